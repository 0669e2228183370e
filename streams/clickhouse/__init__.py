"""ClickHouse access: client factory (chdb:// or http://), migrations, batch writer."""
