"""The scheduled work of ``chatdebug serve``: the retention purge loop and the stale
finalizer loop (store and metrics only; no OpenTelemetry, no HTTP)."""
