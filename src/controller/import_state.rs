//! What the controllers keep for imports from one pass to the next: the settings and the
//! importer built for them (one registry client cache, rebuilt only when the transport
//! settings change, so tokens survive other changes), the schedule of scheduled checks with
//! its budgets (rebuilt only when its own settings change), the keyring each stream's
//! `Unauthorized` failures were seen with, and the image policies each stream was last
//! imported under. Its locks are its own: a reconcile asks it
//! questions, it never hands a lock out.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use crate::credentials::{CredentialSetId, Keyring};
use crate::import::contract::{Batch, BatchResult};
use crate::import::engine::KnownImages;
use crate::import::importer::Importer;
use crate::stream::schedule::{Decision, QuotaDemand, Schedule};

use super::{Metrics, Run, Settings, importer_for, with_observer};

/// The import state of the controllers (see the module docs).
pub struct ImportState {
    /// The settings and the importer built for them, replaced together.
    current: RwLock<(Arc<Settings>, Arc<Importer>)>,
    schedule: Mutex<Option<Schedule>>,
    /// The keyring a stream's `Unauthorized` failures were seen with, by stream UID.
    credentials: Mutex<HashMap<String, CredentialSetId>>,
    /// The policies' fingerprint a stream's last pass imported under, by stream UID.
    policies: Mutex<HashMap<String, u64>>,
    metrics: Arc<Metrics>,
}

impl ImportState {
    /// Registry requests are counted in `metrics` unless the settings observe them otherwise.
    pub fn new(settings: Settings, metrics: Arc<Metrics>) -> ImportState {
        let mut settings = settings;
        let importer = importer_for(&mut settings, &metrics);
        let schedule = schedule_for(&settings);
        ImportState {
            current: RwLock::new((Arc::new(settings), Arc::new(importer))),
            schedule: Mutex::new(schedule),
            credentials: Mutex::new(HashMap::new()),
            policies: Mutex::new(HashMap::new()),
            metrics,
        }
    }

    pub fn settings(&self) -> Arc<Settings> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .0
            .clone()
    }

    pub fn importer(&self) -> Arc<Importer> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .1
            .clone()
    }

    /// Applies new configuration (see the module docs); returns the settings it replaced.
    pub fn set_settings(&self, next: Settings) -> Arc<Settings> {
        let mut next = next;
        let current = self.settings();
        if current.scheduled_interval != next.scheduled_interval
            || current.scheduled_per_minute != next.scheduled_per_minute
            || current.registry_budgets != next.registry_budgets
        {
            *self.schedule.lock().unwrap_or_else(PoisonError::into_inner) = schedule_for(&next);
        }
        let mut held = self.current.write().unwrap_or_else(PoisonError::into_inner);
        let importer = if held.0.same_transport(&next) {
            with_observer(&mut next, &self.metrics);
            held.1.clone()
        } else {
            Arc::new(importer_for(&mut next, &self.metrics))
        };
        std::mem::replace(&mut *held, (Arc::new(next), importer)).0
    }

    /// Runs one batch with the current settings and `known` Images, counting each entry's
    /// outcome.
    pub async fn import(
        &self,
        batch: &Batch,
        keyring: &Keyring,
        known: &(impl KnownImages + Sync),
        now: jiff::Timestamp,
    ) -> BatchResult {
        let (settings, importer) = {
            let held = self.current.read().unwrap_or_else(PoisonError::into_inner);
            (held.0.clone(), held.1.clone())
        };
        let run = Run {
            importer: &importer,
            settings: &settings.import,
            metrics: &self.metrics,
            deadline: None,
        };
        run.import(batch, keyring, known, now).await
    }

    /// The schedule's answer for the stream `uid` whose scheduled tags pull from
    /// `registries` (`None`: scheduled imports are off).
    pub fn schedule_decide(
        &self,
        uid: &str,
        registries: &[String],
        demands: &[QuotaDemand],
    ) -> Option<Decision> {
        let mut schedule = self.schedule.lock().unwrap_or_else(PoisonError::into_inner);
        let schedule = schedule.as_mut()?;
        let now = Instant::now();
        let due = schedule.due(uid);
        let decision = schedule.decide_paced(uid, registries, demands, now);
        self.metrics
            .schedule(schedule.len(), &schedule.budgets_left());
        // a check that was due starts now: how late (waits for budgets and quotas)
        let late = match (decision, due) {
            (Decision::CheckNow { .. }, Some(due)) => Some(now.saturating_duration_since(due)),
            _ => None,
        };
        self.metrics.scheduled(schedule.interval(), late);
        Some(decision)
    }

    /// Spends from the budgets and quotas a check outside the schedule draws from (see
    /// [`Schedule::spend`]); without a schedule (scheduled imports disabled) nothing limits it.
    pub fn schedule_spend(
        &self,
        registries: &[String],
        demands: &[QuotaDemand],
    ) -> Result<(), Duration> {
        match self
            .schedule
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_mut()
        {
            Some(schedule) => schedule.spend(registries, demands, Instant::now()),
            None => Ok(()),
        }
    }

    /// Forgets a deleted stream: its schedule, and the credentials and policies its last
    /// pass saw.
    pub fn forget(&self, uid: &str) {
        self.schedule_remove(uid);
        self.credentials
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(uid);
        self.policies
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(uid);
    }

    /// Forgets a stream that has no scheduled tags (any more).
    pub fn schedule_remove(&self, uid: &str) {
        if let Some(s) = self
            .schedule
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_mut()
        {
            s.remove(uid);
        }
    }

    /// What each registry's quota asks of a check of `tags` (pull specs) with `keyring`: how
    /// many tags pull from it with which credential, and its last announcement.
    pub fn quota_demands<'a>(
        &self,
        tags: impl Iterator<Item = &'a str>,
        keyring: &Keyring,
    ) -> Vec<QuotaDemand> {
        let importer = self.importer();
        let mut counts: HashMap<(String, String), u64> = HashMap::new();
        for from in tags {
            let Ok(parsed) = crate::reference::DockerImageReference::parse(from) else {
                continue;
            };
            let defaulted = parsed.docker_client_defaults();
            let credential = keyring.best(&defaulted.registry, &defaulted.repository_name());
            *counts
                .entry((defaulted.registry, credential.id().as_str().to_string()))
                .or_default() += 1;
        }
        counts
            .into_iter()
            .map(|((registry, credential), checks)| QuotaDemand {
                observed: importer.clients().quota(&registry, &credential),
                registry,
                credential,
                checks,
            })
            .collect()
    }

    /// Whether `Unauthorized` tags of the stream should be tried again: the keyring differs
    /// from the one they failed with (or that is not known, e.g. after a restart).
    pub fn credentials_changed(&self, uid: &str, id: &CredentialSetId) -> bool {
        self.credentials
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(uid)
            .is_none_or(|seen| seen != id)
    }

    /// Whether the image policies changed since the stream's last pass (`fingerprint`:
    /// [`crate::trust::resolve::fingerprint`]). A stream seen for the first time is taken as
    /// imported under them: a restart verifies nothing again.
    pub fn policies_changed(&self, uid: &str, fingerprint: u64) -> bool {
        *self
            .policies
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(uid.to_string())
            .or_insert(fingerprint)
            != fingerprint
    }

    /// The stream's pass under the policies of `fingerprint` is done.
    pub fn remember_policies(&self, uid: &str, fingerprint: u64) {
        self.policies
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(uid.to_string(), fingerprint);
    }

    pub fn remember_credentials(&self, uid: &str, id: CredentialSetId) {
        self.credentials
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(uid.to_string(), id);
    }
}

fn schedule_for(settings: &Settings) -> Option<Schedule> {
    settings.scheduled_interval.map(|interval| {
        Schedule::new(
            interval,
            settings.scheduled_per_minute,
            &settings.registry_budgets,
            Instant::now(),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kept(state: &ImportState, uid: &str) -> (bool, bool, bool) {
        let schedule = state
            .schedule
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        (
            schedule.as_ref().is_some_and(|s| s.due(uid).is_some()),
            state.credentials.lock().unwrap().contains_key(uid),
            state.policies.lock().unwrap().contains_key(uid),
        )
    }

    #[test]
    fn a_deleted_stream_is_forgotten_and_the_others_kept() {
        let settings = Settings {
            scheduled_interval: Some(Duration::from_secs(60)),
            ..Settings::default()
        };
        let state = ImportState::new(settings, Arc::default());
        for uid in ["gone", "kept"] {
            assert!(state.schedule_decide(uid, &[], &[]).is_some());
            state.remember_credentials(uid, Keyring::default().id());
            assert!(!state.policies_changed(uid, 1), "first sight");
            assert_eq!(kept(&state, uid), (true, true, true));
        }
        state.forget("gone");
        assert_eq!(kept(&state, "gone"), (false, false, false));
        assert_eq!(kept(&state, "kept"), (true, true, true));
        // seen again (a stream of the same UID cannot come back, but a restart is the same):
        // first sight, nothing to verify again
        assert!(!state.policies_changed("gone", 2));
    }
}
