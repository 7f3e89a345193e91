//! The `neo4j` engine: the production engine (neo4j-admin, Cypher administration).
