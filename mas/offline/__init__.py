"""The offline model and every transport under the real SDK: the Messages API answered locally
(`transport.OfflineTransport`), a scripted queue (`scripted`), a session recorded (`record`) and replayed
(`replay`). Each transport serves `Anthropic` and `AsyncAnthropic` alike. This package sits below the SDK:
`mas.client` chooses among its transports, and nothing here imports `mas.client`."""

from mas.offline.faults import Fault, FaultPlan
from mas.offline.model import Latency, OfflineModel
from mas.offline.scripted import ScriptedTransport, error
from mas.offline.transport import OfflineTransport
from mas.offline.wire import text_message

__all__ = ["Fault", "FaultPlan", "Latency", "OfflineModel", "OfflineTransport", "ScriptedTransport", "error",
           "text_message"]
