"""anpr-edge device program: pipeline, recogniser, evidence images, uplink, config, CLI."""

__version__ = "0.1.0"
