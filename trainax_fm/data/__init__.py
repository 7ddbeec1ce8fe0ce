"""Data larger than memory: trajectories that stay on disk.

A [`DiskTrajectories`][trainax_fm.data.DiskTrajectories] names an array
`(S, T, C, *spatial)` in a `.npy` file (read window by window with `os.pread`), an
HDF5 file (h5py) or a zarr store; an array stored channels last `(S, T, *spatial, C)`
or the per-field HDF5 groups of the_well are rearranged into that layout window by
window. Every trainer accepts it in place of an in-memory
array: the windows of each minibatch are then read on the host, ahead of the update
that uses them, and under several processes each process reads only its rows of the
minibatch.
In-memory arrays stay the default and the fastest path for data that fits.

A [`SystemMixture`][trainax_fm.data.SystemMixture] draws the trajectories of many
systems (in memory or on disk) with a mixing weight per system; it is again such a
source.
"""

from ._disk import DiskTrajectories as DiskTrajectories
from ._disk import WindowReader as WindowReader
from ._spec import open_trajectories as open_trajectories
from ._system_mixture import SystemMixture as SystemMixture
