//! Supervision and workers (hamsters parse RAW into PARSED, monkeys process
//! PARSED). Filled in by the worker issue; the crate exists now so that the
//! workspace has its final shape.
