#!/bin/sh
# Runs once, when the postgres container initialises an empty data volume: the two login roles
# Signet needs, and nothing else. signet_owner owns the database (so, on PostgreSQL 15+, its public
# schema) and runs migrations; at every start it grants signet_app exactly what the service uses
# (src/database/app-role.ts). Neither is a superuser; Signet refuses to serve as one.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -v db="$POSTGRES_DB" \
  -v owner_password="$(cat /run/secrets/db_owner_password)" \
  -v app_password="$(cat /run/secrets/db_app_password)" <<'SQL'
CREATE ROLE signet_owner LOGIN PASSWORD :'owner_password';
CREATE ROLE signet_app LOGIN PASSWORD :'app_password';
ALTER DATABASE :"db" OWNER TO signet_owner;
SQL
