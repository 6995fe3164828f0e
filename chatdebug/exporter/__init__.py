"""The bridge from OpenTelemetry spans to the store.

:class:`StoreSpanProcessor` writes runs and steps as their spans start and end, through
a bounded background queue; :class:`StoreSpanExporter` writes them once spans end, for
use behind an OTel ``BatchSpanProcessor``. Both compute a run's summary from its steps
with :func:`aggregate_run_summary` when the run ends. Both price each step with a
:class:`Pricer` (genai-prices' bundled data plus overrides) before it is written.
With a :class:`SpillJournal`, what the processor's :class:`BackgroundWriter` cannot
write in time waits in a local file instead of memory, and is replayed in order.
"""

from ._exporter import StoreSpanExporter
from ._pricing import Pricer, PricesError, load_prices_file, repriced_metadata, validate_prices
from ._processor import StoreSpanProcessor
from ._replay import ReplayReport, replay_spill
from ._spill import SpillJournal, slot_paths
from ._summary import aggregate_run_summary, truncate_label
from ._writer import DEFAULT_HANDOFF, BackgroundWriter

__all__ = [
    "DEFAULT_HANDOFF",
    "BackgroundWriter",
    "Pricer",
    "PricesError",
    "ReplayReport",
    "SpillJournal",
    "StoreSpanExporter",
    "StoreSpanProcessor",
    "aggregate_run_summary",
    "load_prices_file",
    "replay_spill",
    "repriced_metadata",
    "slot_paths",
    "truncate_label",
    "validate_prices",
]
