"""The RFM camera core: model data, numba kernels, readers per format, bias compensation."""

from offnadir.camera.camera import Camera
from offnadir.camera.rpc import RPC

__all__ = ["Camera", "RPC"]
