"""ecgae.archive: score whole archives of recordings (WFDB, EDF/EDF+, raw .npy/.csv) to Parquet, in-process
or on Ray Data. A client of ``ecgae.runtime``; nothing in the package imports it.

Needs the ``archive`` extra: ``pip install '.[archive]'`` in the ecgae source folder (pyarrow, ray[data], edfio,
wfdb, tqdm).
"""
