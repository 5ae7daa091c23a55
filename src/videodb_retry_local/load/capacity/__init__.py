"""Capacity model of the deployed stack and its calibration against the emulated stack."""
