"""The device's read pipeline: capture and recognition threads (loop), the multi-frame tracker, exposure
control and the evidence images."""
