-- Runs once, when the PostgreSQL volume is empty: one database per consumer.
-- `dagster` (POSTGRES_DB) is created by the image itself.
CREATE DATABASE market;
CREATE DATABASE mlflow;
