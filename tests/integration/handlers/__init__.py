"""Handlers the integration tests deploy as Knative Services (``tests.integration.handlers.*``)."""
