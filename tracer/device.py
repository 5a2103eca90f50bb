"""Devices.  This library computes on the CPU; anything else is refused
with an error that lists what exists, rather than silently running on the
CPU."""
from .errors import DeviceError


class Device:
    __slots__ = ('device_type', 'device_id')

    def __init__(self, device_type='cpu', device_id=0):
        if isinstance(device_type, Device):
            device_type, device_id = device_type.device_type, device_type.device_id
        self.device_type = device_type
        self.device_id = device_id

    def __eq__(self, other):
        return (isinstance(other, Device) and other.device_type == self.device_type
                and other.device_id == self.device_id)

    def __hash__(self):
        return hash((self.device_type, self.device_id))

    def __repr__(self):
        return f'{self.device_type}({self.device_id})'

    __str__ = __repr__


def cpu(device_id=0):
    return Device('cpu', device_id)


def available():
    """The devices this process can compute on."""
    return [cpu(0)]


def gpu(device_id=0):
    """Raises: there is no GPU support; kept so MXNet code fails clearly."""
    return as_device(Device('gpu', device_id))


def as_device(device):
    """Accept ``cpu()``, ``'cpu'``, ``'cpu:0'``, ``'cuda'``... -> an available Device."""
    if device is None:
        return cpu()
    if isinstance(device, str):
        name, _, idx = device.partition(':')
        name = name.strip().lower()
        try:
            dev = Device(name, int(idx) if idx else 0)
        except ValueError:
            raise DeviceError(f'cannot parse device {device!r}; use e.g. "cpu" or "cpu:0"') from None
    elif isinstance(device, Device):
        dev = device
    else:
        raise DeviceError(f'expected a device such as tracer.cpu() or "cpu", got {device!r}')
    if dev not in available():
        shown = ', '.join(str(d) for d in available())
        raise DeviceError(f'device {device!r} is not available: this library computes on the '
                          f'CPU only. Available devices: {shown}')
    return dev
