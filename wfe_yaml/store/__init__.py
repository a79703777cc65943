"""SQLite run history (DESIGN §6): runs, step records, outputs, log files; resume and replay."""

from wfe_yaml.store.recorder import RunRecorder
from wfe_yaml.store.store import Store

__all__ = ["RunRecorder", "Store"]
