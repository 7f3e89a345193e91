//! `cutover digest`: print a graph fingerprint read over Bolt.
