"""The offline model: the Messages API answered locally, under the real SDK (see DESIGN.md)."""

from mas.offline.faults import Fault, FaultPlan
from mas.offline.model import Latency, OfflineModel
from mas.offline.scripted import ScriptedTransport, error
from mas.offline.transport import OfflineTransport
from mas.offline.wire import text_message

__all__ = ["Fault", "FaultPlan", "Latency", "OfflineModel", "OfflineTransport", "ScriptedTransport", "error",
           "text_message"]
