"""Telemetry: OpenTelemetry traces and metrics for modelyard. Only this package configures OTel providers."""
