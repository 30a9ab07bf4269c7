"""Running a grid on Slurm through submitit: resources and profiles, submission as job arrays
of packed cells, the record of what was submitted (the ledger), job states from ``sacct``,
and the tasks that run on the compute nodes."""
