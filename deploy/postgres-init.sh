#!/bin/sh
# First start of the compose database: the shop logs in as an ordinary role that owns
# its database. Applications never hold superuser sessions (OpsGraph never terminates
# those, so a leak by a superuser would not be fixable).
set -eu
psql -v ON_ERROR_STOP=1 --username postgres --dbname shop \
     -v shop_password="$SHOP_DB_PASSWORD" <<'SQL'
CREATE ROLE shop LOGIN NOSUPERUSER PASSWORD :'shop_password';
ALTER DATABASE shop OWNER TO shop;
ALTER SCHEMA public OWNER TO shop;
SQL
