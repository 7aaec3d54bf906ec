"""Studies behind the seed reports, each a job with its figures: ``analyze`` (report 002's BatchNorm
loss-landscape study), ``transfer`` (report 003's transfer study), ``viz`` (filters and activations)."""
