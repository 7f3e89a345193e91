//! The `local` provider: database server processes on loopback ports, directories as images and object store, files as secret store.
