"""Reading and writing exports: array files (npz, NetCDF), manifests, fingerprints.

Knows the on-disk formats and nothing of providers or models; ``load_export`` reads
back what ``export_batch`` wrote (and what the public rs-embed writes).
"""
