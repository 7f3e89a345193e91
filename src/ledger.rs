//! A realistic generated ledger (the shape of the credex LedgerSpace) for tests, demo and bench.
