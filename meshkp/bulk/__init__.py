"""Bulk import and export: `meshkp load` (keyrings, armored files, SKS dumps) and `meshkp dump`."""
