"""Commissioning tools: focus, plate size, shutter, ROI, masks, report."""
