//! The integration suites live in `tests/`: each is one test binary with its own real control
//! plane (`wfe_tools::shared()`), working in fresh namespaces.
