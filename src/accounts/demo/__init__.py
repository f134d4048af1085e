"""Demonstration data: realistic tenures, a year of rent and payments, loaded through the service's own paths."""
