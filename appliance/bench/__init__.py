"""Load generators behind `salesboost bench`."""
