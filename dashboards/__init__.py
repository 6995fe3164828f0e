"""Grafana dashboards and Prometheus alert rules for chatdebug, and their generator
(``build.py``). Not part of the installed package."""
