// seed-shop: a RECONSTRUCTION, for benchmarking only, of the Express +
// PostgreSQL order service that oms replaces (the "seed projects"). Its code
// was not available: this file was written from the description of the seed
// projects (an Express service on PostgreSQL that reads stock and then writes
// it without a transaction, so it oversells, and accepts orders it cannot
// fill), kept as small and as typical of such a service as possible, and
// given the HTTP shape `oms serve` answers for placement so that the same wrk
// script (scripts/wrk/place.lua) drives both. It is not shipped and not a
// model to follow: scripts/bench-pg starts it next to oms on the same
// PostgreSQL server.
//
// What it does, per POST /api/orders (body
// {"customer_id":N,"items":[{"sku":"SKU-001","quantity":1},...]}):
//   for each line, in the order given, each query on whatever pool
//   connection is free (no transaction, no row lock):
//     SELECT * FROM products WHERE sku = $1
//     check stock_on_hand - stock_reserved >= quantity in JavaScript (409 if not)
//     UPDATE products SET stock_reserved = <value computed in JavaScript>
//   then INSERT the order, then INSERT each item, one query each.
// An `Authorization: Bearer ...` header is accepted and ignored, and so is
// `Idempotency-Key`. Answers: 201 with the order as JSON, 400 for a body
// without items, 404 for an unknown SKU, 409 when a line's stock is short,
// 500 for anything the database refuses (an unknown customer, ...).
//
// Its faults are the seed's, kept on purpose: two requests that read the
// same product before either writes both compute `reserved + quantity` from
// the same value, and the second write loses the first one's reservation
// (a lost update: the order holds stock nobody reserved, so the same units
// can be sold twice); a line refused after earlier lines were reserved
// leaves those reservations behind; money is a NUMERIC added up in floats.
//
// "Stock-holding orders" in scripts/bench-pg's comparison are the orders a
// system answered 201 and that are in its database after the run, per second
// of the run. For this service that counts every order it stored, including
// those whose reservation was lost: its oversold orders count in its favour,
// and the report says so next to the number of units lost.
//
// Environment: DATABASE_URL (postgres://...; created by `node db.js setup`),
// HOST (default 127.0.0.1), PORT (default 3000; 0 takes any free port). On
// start it prints `seed-shop listening on http://HOST:PORT/`. The pool is
// `new pg.Pool()` with its defaults (10 connections), one Node process.

import express from "express";
import pg from "pg";

const { Pool } = pg;

const pool = new Pool({ connectionString: process.env.DATABASE_URL });
const app = express();
app.use(express.json());

app.get("/healthz", async (req, res) => {
  try {
    await pool.query("SELECT 1");
    res.json({ status: "ok" });
  } catch (err) {
    res.status(503).json({ error: err.message });
  }
});

app.post("/api/orders", async (req, res) => {
  // The bearer token is accepted and not checked.
  const { customer_id, items } = req.body || {};
  if (!Array.isArray(items) || items.length === 0) {
    return res.status(400).json({ error: "items are required" });
  }
  try {
    const lines = [];
    let total = 0;
    for (const item of items) {
      const quantity = Number(item.quantity) || 1;
      const found = await pool.query("SELECT * FROM products WHERE sku = $1", [item.sku]);
      const product = found.rows[0];
      if (!product) {
        return res.status(404).json({ error: `Product ${item.sku} not found` });
      }
      const available = product.stock_on_hand - product.stock_reserved;
      if (available < quantity) {
        return res.status(409).json({ error: `Insufficient stock for ${item.sku}` });
      }
      await pool.query(
        "UPDATE products SET stock_reserved = $1, updated_at = NOW() WHERE id = $2",
        [product.stock_reserved + quantity, product.id],
      );
      const price = Number(product.price);
      total += price * quantity;
      lines.push({
        product_id: product.id,
        sku: product.sku,
        name: product.name,
        unit_price: price,
        quantity,
        line_total: price * quantity,
      });
    }
    const inserted = await pool.query(
      "INSERT INTO orders (customer_id, status, total) VALUES ($1, 'PENDING', $2) RETURNING *",
      [customer_id, total.toFixed(2)],
    );
    const order = inserted.rows[0];
    for (const line of lines) {
      await pool.query(
        "INSERT INTO order_items (order_id, product_id, quantity, unit_price) VALUES ($1, $2, $3, $4)",
        [order.id, line.product_id, line.quantity, line.unit_price],
      );
    }
    res.status(201).json({ ...order, total: Number(order.total), items: lines });
  } catch (err) {
    res.status(500).json({ error: err.message });
  }
});

const host = process.env.HOST || "127.0.0.1";
const server = app.listen(Number(process.env.PORT ?? 3000), host, () => {
  console.log(`seed-shop listening on http://${host}:${server.address().port}/`);
});

function shutdown() {
  server.close(() => pool.end().then(() => process.exit(0)));
  // Keep-alive connections of a load generator may hold close() open.
  setTimeout(() => process.exit(0), 2000).unref();
}
process.on("SIGTERM", shutdown);
process.on("SIGINT", shutdown);
