"""Running candidates on machines: one candidate's whole job (``worker``), the executors that run many
(``executors``: in-process, local processes, Ray; ``slurm``), and a candidate's ``state``.

Below the search: nothing here knows Algorithm 1 or the ledger. A task in, a result out.
"""
