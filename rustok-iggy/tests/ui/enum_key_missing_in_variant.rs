use rustok_iggy::IggyEvent;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, IggyEvent)]
#[iggy(topic = "orders", key = tenant_id)]
enum OrderEvent {
    Placed { tenant_id: String, total_cents: u64 },
    Audited { order_id: u64 },
}

fn main() {}
