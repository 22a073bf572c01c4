// The seed shop's database (see server.js: a reconstruction for
// benchmarking, not shipped).
//
//   DATABASE_URL=postgres://... node db.js setup    # (re)create the schema and seed it
//   DATABASE_URL=postgres://... node db.js report   # orders and stock, one line
//
// setup drops and recreates its four tables (products, customers, orders,
// order_items) and seeds the data the oms benchmarks use: 200 products
// SKU-001..SKU-200 with ample stock (100,000,000 each, none reserved) and
// 1,000 customers with ids 1..1000 (c1@example.com..).
//
// report prints `orders=N items=N ordered_units=N reserved_units=N
// lost_units=N skus_short=N`: every order row, the units their items hold,
// the units the products say are reserved, the difference (units held by
// orders without a reservation: the seed's lost updates, i.e. stock that
// can be sold twice) and how many products show such a difference. Right
// after setup nothing is reserved, so the two sums must be equal.

import pg from "pg";

const STOCK = 100000000;
const SKUS = 200;
const CUSTOMERS = 1000;

const schema = `
DROP TABLE IF EXISTS order_items, orders, products, customers;
CREATE TABLE customers (
  id SERIAL PRIMARY KEY,
  name TEXT NOT NULL,
  email TEXT NOT NULL UNIQUE,
  created_at TIMESTAMPTZ NOT NULL DEFAULT NOW()
);
CREATE TABLE products (
  id SERIAL PRIMARY KEY,
  sku TEXT NOT NULL UNIQUE,
  name TEXT NOT NULL,
  price NUMERIC(10, 2) NOT NULL,
  stock_on_hand INTEGER NOT NULL DEFAULT 0,
  stock_reserved INTEGER NOT NULL DEFAULT 0,
  created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
  updated_at TIMESTAMPTZ NOT NULL DEFAULT NOW()
);
CREATE TABLE orders (
  id SERIAL PRIMARY KEY,
  customer_id INTEGER NOT NULL REFERENCES customers (id),
  status TEXT NOT NULL DEFAULT 'PENDING',
  total NUMERIC(10, 2) NOT NULL,
  created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
  updated_at TIMESTAMPTZ NOT NULL DEFAULT NOW()
);
CREATE INDEX orders_customer_id ON orders (customer_id);
CREATE TABLE order_items (
  id SERIAL PRIMARY KEY,
  order_id INTEGER NOT NULL REFERENCES orders (id),
  product_id INTEGER NOT NULL REFERENCES products (id),
  quantity INTEGER NOT NULL,
  unit_price NUMERIC(10, 2) NOT NULL
);
CREATE INDEX order_items_order_id ON order_items (order_id);
`;

async function setup(client) {
  await client.query(schema);
  await client.query(
    `INSERT INTO products (sku, name, price, stock_on_hand)
     SELECT format('SKU-%s', lpad(i::text, 3, '0')), format('Product %s', i),
            (1 + i % 90) + (i % 100) / 100.0, $1
     FROM generate_series(1, $2::int) AS i`,
    [STOCK, SKUS],
  );
  await client.query(
    `INSERT INTO customers (name, email)
     SELECT format('Customer %s', i), format('c%s@example.com', i)
     FROM generate_series(1, $1::int) AS i ORDER BY i`,
    [CUSTOMERS],
  );
  console.log(`seed-shop: ${SKUS} products, ${CUSTOMERS} customers`);
}

async function report(client) {
  const { rows } = await client.query(`
    WITH held AS (
      SELECT product_id, SUM(quantity)::bigint AS units FROM order_items GROUP BY product_id
    )
    SELECT
      (SELECT COUNT(*) FROM orders) AS orders,
      (SELECT COUNT(*) FROM order_items) AS items,
      (SELECT COALESCE(SUM(units), 0) FROM held) AS ordered_units,
      (SELECT COALESCE(SUM(stock_reserved), 0) FROM products) AS reserved_units,
      (SELECT COUNT(*) FROM products p LEFT JOIN held h ON h.product_id = p.id
        WHERE p.stock_reserved <> COALESCE(h.units, 0)) AS skus_short`);
  const r = rows[0];
  const lost = BigInt(r.ordered_units) - BigInt(r.reserved_units);
  console.log(
    `orders=${r.orders} items=${r.items} ordered_units=${r.ordered_units} ` +
      `reserved_units=${r.reserved_units} lost_units=${lost} skus_short=${r.skus_short}`,
  );
}

const command = process.argv[2];
const commands = { setup, report };
if (!commands[command] || !process.env.DATABASE_URL) {
  console.error("usage: DATABASE_URL=postgres://... node db.js setup|report");
  process.exit(2);
}
const client = new pg.Client({ connectionString: process.env.DATABASE_URL });
try {
  await client.connect();
  await commands[command](client);
} catch (err) {
  console.error(`seed-shop: ${err.message}`);
  process.exitCode = 1;
} finally {
  await client.end();
}
