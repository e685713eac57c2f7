//! History pruning and Image garbage collection (semantics 8, design.md section 7), run by the
//! operator on the `cluster` ImagePruner's schedule: [`schedule`] reads the cron expression,
//! [`plan`] decides what goes (pure), and [`crate::controller::pruner`] runs it. [`guard`]
//! decides what users may not remove by hand (the admission webhooks enforce it).

pub mod guard;
pub mod plan;
pub mod schedule;
