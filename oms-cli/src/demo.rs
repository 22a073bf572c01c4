//! The demo data loaded by `oms init --demo`, embedded so the binary works
//! anywhere. The same files live in `fixtures/` for tests and scripts.

pub const PRODUCTS: &str = include_str!("../../fixtures/products.csv");
pub const CUSTOMERS: &str = include_str!("../../fixtures/customers.csv");
pub const ORDERS: &str = include_str!("../../fixtures/orders.csv");

/// The demo administrator created by `oms init --demo`.
pub const ADMIN_EMAIL: &str = "admin@example.com";
/// Its password: demo only, printed by `init --demo`.
pub const ADMIN_PASSWORD: &str = "demo-admin-password";
