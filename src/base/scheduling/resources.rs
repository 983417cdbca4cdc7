//! Resource amounts, requests and a node's accounting: pure.
//!
//! Amounts are fixed point with four decimals (as Ray's), so fractions add up exactly:
//! three tasks of 0.33 GPU fit one GPU, and releasing what was acquired always restores the
//! starting amount.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

/// One whole unit of a resource.
pub(crate) const UNIT: i64 = 10_000;

/// Converts a user-given amount to fixed point, checking it.
pub(crate) fn to_units(what: &str, amount: f64) -> Result<i64, String> {
    if !amount.is_finite() || amount < 0.0 {
        return Err(format!(
            "{what} must be a non-negative number, got {amount}"
        ));
    }
    if amount > 1e12 {
        return Err(format!("{what} is too large: {amount}"));
    }
    Ok((amount * UNIT as f64).round() as i64)
}

fn fmt_units(units: i64) -> String {
    if units % UNIT == 0 {
        (units / UNIT).to_string()
    } else {
        let s = format!("{:.4}", units as f64 / UNIT as f64);
        s.trim_end_matches('0').to_string()
    }
}

/// Sets the amount of a named resource in a list of `(name, amount)`, replacing an earlier
/// one: the options' and the config's `.resource(name, amount)`.
pub(crate) fn set_amount(list: &mut Vec<(String, f64)>, name: String, amount: f64) {
    list.retain(|(n, _)| *n != name);
    list.push((name, amount));
}

/// What one task asks for.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub(crate) struct ResourceRequest {
    pub cpu: i64,
    pub gpu: i64,
    /// Sorted by name, no zero amounts.
    pub custom: Vec<(Arc<str>, i64)>,
}

impl ResourceRequest {
    /// The request as the wire carries it: `CPU`, `GPU`, then custom resources, in amounts.
    pub fn to_list(&self) -> Vec<(String, f64)> {
        let mut out = Vec::with_capacity(2 + self.custom.len());
        if self.cpu > 0 {
            out.push(("CPU".to_string(), self.cpu as f64 / UNIT as f64));
        }
        if self.gpu > 0 {
            out.push(("GPU".to_string(), self.gpu as f64 / UNIT as f64));
        }
        for (name, amount) in &self.custom {
            out.push((name.to_string(), *amount as f64 / UNIT as f64));
        }
        out
    }

    /// A request from the wire's list ([`to_list`](Self::to_list)), checked as any request
    /// is: what another node sends is not trusted to be a valid amount.
    pub fn from_list(list: &[(String, f64)]) -> Result<Self, String> {
        let (mut cpus, mut gpus, mut custom) = (0.0, 0.0, Vec::new());
        for (name, amount) in list {
            match name.as_str() {
                "CPU" => cpus = *amount,
                "GPU" => gpus = *amount,
                _ => custom.push((name.clone(), *amount)),
            }
        }
        ResourceRequest::new(cpus, gpus, &custom)
    }

    pub fn new(num_cpus: f64, num_gpus: f64, custom: &[(String, f64)]) -> Result<Self, String> {
        let cpu = to_units("num_cpus", num_cpus)?;
        let gpu = to_units("num_gpus", num_gpus)?;
        if gpu > UNIT && gpu % UNIT != 0 {
            return Err(format!(
                "num_gpus above 1 must be a whole number, got {num_gpus}"
            ));
        }
        let mut merged: BTreeMap<Arc<str>, i64> = BTreeMap::new();
        for (name, amount) in custom {
            check_custom_name(name)?;
            let units = to_units(&format!("resource `{name}`"), *amount)?;
            *merged.entry(Arc::from(name.as_str())).or_default() = units;
        }
        let custom = merged.into_iter().filter(|(_, n)| *n > 0).collect();
        Ok(ResourceRequest { cpu, gpu, custom })
    }
}

pub(crate) fn check_custom_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("a custom resource needs a name".into());
    }
    if matches!(name, "CPU" | "GPU" | "cpu" | "gpu") {
        return Err(format!(
            "`{name}` is not a custom resource: use num_cpus / num_gpus for CPUs and GPUs"
        ));
    }
    Ok(())
}

impl fmt::Display for ResourceRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = vec![format!("{} CPU", fmt_units(self.cpu))];
        if self.gpu > 0 {
            parts.push(format!("{} GPU", fmt_units(self.gpu)));
        }
        for (name, n) in &self.custom {
            parts.push(format!("{} {name}", fmt_units(*n)));
        }
        f.write_str(&parts.join(", "))
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct GpuSlot {
    id: u32,
    free: i64,
}

/// What a running task holds; given back when it ends.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Grant {
    pub cpu: i64,
    /// (GPU slot index, GPU id, amount).
    gpus: Vec<(usize, u32, i64)>,
    custom: Vec<(Arc<str>, i64)>,
}

impl Grant {
    /// The ids of the GPUs this task may use.
    pub fn gpu_ids(&self) -> Vec<u32> {
        self.gpus.iter().map(|g| g.1).collect()
    }
}

/// A node's resources: what it has and what is free.
#[derive(Clone, Debug)]
pub(crate) struct NodeResources {
    total_cpu: i64,
    free_cpu: i64,
    gpus: Vec<GpuSlot>,
    custom_total: BTreeMap<Arc<str>, i64>,
    custom_free: BTreeMap<Arc<str>, i64>,
}

impl NodeResources {
    pub fn new(cpu: i64, gpu_ids: &[u32], custom: &[(String, f64)]) -> Result<Self, String> {
        let mut custom_total = BTreeMap::new();
        for (name, amount) in custom {
            check_custom_name(name)?;
            custom_total.insert(
                Arc::from(name.as_str()),
                to_units(&format!("resource `{name}`"), *amount)?,
            );
        }
        Ok(NodeResources {
            total_cpu: cpu,
            free_cpu: cpu,
            gpus: gpu_ids
                .iter()
                .map(|&id| GpuSlot { id, free: UNIT })
                .collect(),
            custom_free: custom_total.clone(),
            custom_total,
        })
    }

    /// Could this request ever be met here, with the whole node free?
    pub fn feasible(&self, req: &ResourceRequest) -> bool {
        let gpus = if req.gpu == 0 {
            true
        } else {
            (self.gpus.len() as i64) * UNIT >= req.gpu.max(1)
        };
        req.cpu <= self.total_cpu
            && gpus
            && req
                .custom
                .iter()
                .all(|(n, a)| self.custom_total.get(n).copied().unwrap_or(0) >= *a)
    }

    /// Whether the request would be granted now (nothing is taken).
    pub fn fits_now(&self, req: &ResourceRequest) -> bool {
        req.cpu <= self.free_cpu
            && req
                .custom
                .iter()
                .all(|(n, a)| self.custom_free.get(n).copied().unwrap_or(0) >= *a)
            && (req.gpu == 0 || self.pick_gpus(req.gpu).is_some())
    }

    /// Takes the resources if they are free now.
    pub fn try_acquire(&mut self, req: &ResourceRequest) -> Option<Grant> {
        if req.cpu > self.free_cpu {
            return None;
        }
        if !req
            .custom
            .iter()
            .all(|(n, a)| self.custom_free.get(n).copied().unwrap_or(0) >= *a)
        {
            return None;
        }
        let gpus = self.pick_gpus(req.gpu)?;
        self.free_cpu -= req.cpu;
        for (slot, _, amount) in &gpus {
            self.gpus[*slot].free -= amount;
        }
        for (n, a) in &req.custom {
            if let Some(free) = self.custom_free.get_mut(n) {
                *free -= a;
            }
        }
        Some(Grant {
            cpu: req.cpu,
            gpus,
            custom: req.custom.clone(),
        })
    }

    fn pick_gpus(&self, want: i64) -> Option<Vec<(usize, u32, i64)>> {
        if want == 0 {
            return Some(Vec::new());
        }
        if want < UNIT {
            // A fraction: the fullest GPU it still fits on, so fractions pack together.
            let (slot, g) = self
                .gpus
                .iter()
                .enumerate()
                .filter(|(_, g)| g.free >= want)
                .min_by_key(|(_, g)| g.free)?;
            return Some(vec![(slot, g.id, want)]);
        }
        let whole: Vec<_> = self
            .gpus
            .iter()
            .enumerate()
            .filter(|(_, g)| g.free == UNIT)
            .take((want / UNIT) as usize)
            .collect();
        if (whole.len() as i64) * UNIT < want {
            return None;
        }
        Some(
            whole
                .into_iter()
                .map(|(slot, g)| (slot, g.id, UNIT))
                .collect(),
        )
    }

    pub fn release(&mut self, grant: &Grant) {
        self.free_cpu += grant.cpu;
        for (slot, _, amount) in &grant.gpus {
            self.gpus[*slot].free += amount;
        }
        for (n, a) in &grant.custom {
            if let Some(free) = self.custom_free.get_mut(n) {
                *free += a;
            }
        }
    }

    /// Adds to a custom resource's total and to what is free of it. A placement group's
    /// bundle is announced (total, nothing free: tasks for it wait, they do not fail), then
    /// freed once its resources are reserved.
    pub fn add_custom(&mut self, name: &Arc<str>, total: i64, free: i64) {
        *self.custom_total.entry(name.clone()).or_default() += total;
        *self.custom_free.entry(name.clone()).or_default() += free;
    }

    /// Takes an amount of a custom resource away (a removed placement group). What running
    /// tasks hold of it is not given back to anyone; at zero it is gone.
    pub fn remove_custom(&mut self, name: &Arc<str>, units: i64) {
        if let Some(total) = self.custom_total.get_mut(name) {
            *total -= units;
            if *total <= 0 {
                self.custom_total.remove(name);
                self.custom_free.remove(name);
                return;
            }
        }
        if let Some(free) = self.custom_free.get_mut(name) {
            *free -= units;
        }
    }

    /// The node's CPUs become `cpu` units (an agent shares its machine between builds anew):
    /// what is free moves by as much, and may stay below zero until running tasks end.
    pub fn set_cpu_total(&mut self, cpu: i64) {
        self.free_cpu += cpu - self.total_cpu;
        self.total_cpu = cpu;
    }

    /// A task blocked in `get`: its CPUs are lent to other tasks (as Ray does).
    pub fn lend_cpu(&mut self, cpu: i64) {
        self.free_cpu += cpu;
    }

    /// The blocked task resumes: it takes its CPUs back at once, even if that briefly
    /// oversubscribes the node.
    pub fn reclaim_cpu(&mut self, cpu: i64) {
        self.free_cpu -= cpu;
    }

    /// What is free now, by name (`CPU`, `GPU`, custom), as amounts.
    pub fn available(&self) -> Vec<(String, f64)> {
        let unit = UNIT as f64;
        let mut out = vec![
            ("CPU".to_string(), self.free_cpu.max(0) as f64 / unit),
            (
                "GPU".to_string(),
                self.gpus.iter().map(|g| g.free).sum::<i64>() as f64 / unit,
            ),
        ];
        out.extend(
            self.custom_free
                .iter()
                .map(|(n, a)| (n.to_string(), (*a).max(0) as f64 / unit)),
        );
        out
    }

    #[cfg(test)]
    pub fn free_cpu(&self) -> i64 {
        self.free_cpu
    }

    /// The node's totals: CPUs, GPUs (as units) and custom resources.
    pub fn totals(&self) -> (i64, i64, BTreeMap<Arc<str>, i64>) {
        (
            self.total_cpu,
            self.gpus.len() as i64 * UNIT,
            self.custom_total.clone(),
        )
    }

    pub fn describe_total(&self) -> String {
        let mut parts = vec![format!("{} CPU", fmt_units(self.total_cpu))];
        parts.push(format!("{} GPU", self.gpus.len()));
        for (n, a) in &self.custom_total {
            parts.push(format!("{} {n}", fmt_units(*a)));
        }
        parts.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_crosses_the_wire_and_bad_amounts_from_it_are_refused() {
        let req = ResourceRequest::new(1.5, 1.0, &[("disk".into(), 2.0)]).unwrap();
        assert_eq!(ResourceRequest::from_list(&req.to_list()).unwrap(), req);
        for bad in [-1.0, f64::NAN, f64::INFINITY, 1e300] {
            assert!(
                ResourceRequest::from_list(&[("CPU".into(), bad)]).is_err(),
                "{bad}"
            );
            assert!(
                ResourceRequest::from_list(&[("disk".into(), bad)]).is_err(),
                "{bad}"
            );
        }
    }

    fn req(cpu: f64, gpu: f64, custom: &[(&str, f64)]) -> ResourceRequest {
        let custom: Vec<_> = custom.iter().map(|(n, a)| (n.to_string(), *a)).collect();
        ResourceRequest::new(cpu, gpu, &custom).unwrap()
    }

    #[test]
    fn invalid_amounts_are_refused_with_the_reason() {
        assert!(
            ResourceRequest::new(-1.0, 0.0, &[])
                .unwrap_err()
                .contains("num_cpus")
        );
        assert!(ResourceRequest::new(f64::NAN, 0.0, &[]).is_err());
        assert!(
            ResourceRequest::new(1.0, 1.5, &[])
                .unwrap_err()
                .contains("whole number")
        );
        assert!(
            ResourceRequest::new(1.0, 0.0, &[("CPU".into(), 1.0)])
                .unwrap_err()
                .contains("num_cpus")
        );
    }

    #[test]
    fn cpus_are_counted_exactly_with_fractions() {
        let mut node = NodeResources::new(UNIT, &[], &[]).unwrap();
        let third = req(0.3333, 0.0, &[]);
        let grants: Vec<_> = (0..3).map(|_| node.try_acquire(&third).unwrap()).collect();
        assert!(node.try_acquire(&third).is_none());
        for g in &grants {
            node.release(g);
        }
        assert_eq!(node.free_cpu(), UNIT);
    }

    #[test]
    fn fractional_gpus_pack_onto_one_gpu() {
        let mut node = NodeResources::new(UNIT * 4, &[0, 1], &[]).unwrap();
        let half = req(0.0, 0.5, &[]);
        let a = node.try_acquire(&half).unwrap();
        let b = node.try_acquire(&half).unwrap();
        assert_eq!(a.gpu_ids(), b.gpu_ids(), "two halves share a GPU");
        let c = node.try_acquire(&half).unwrap();
        assert_ne!(c.gpu_ids(), a.gpu_ids());
        assert!(
            node.try_acquire(&req(0.0, 1.0, &[])).is_none(),
            "no whole GPU left"
        );
        node.release(&a);
        node.release(&b);
        assert_eq!(
            node.try_acquire(&req(0.0, 1.0, &[])).unwrap().gpu_ids(),
            vec![0]
        );
    }

    #[test]
    fn whole_gpus_take_distinct_ids() {
        let mut node = NodeResources::new(0, &[3, 5, 7], &[]).unwrap();
        let g = node.try_acquire(&req(0.0, 2.0, &[])).unwrap();
        assert_eq!(g.gpu_ids(), vec![3, 5]);
        assert!(node.try_acquire(&req(0.0, 2.0, &[])).is_none());
        assert!(node.feasible(&req(0.0, 3.0, &[])));
        assert!(!node.feasible(&req(0.0, 4.0, &[])));
    }

    #[test]
    fn custom_resources_gate_tasks() {
        let mut node = NodeResources::new(UNIT * 8, &[], &[("fpga".into(), 2.0)]).unwrap();
        let one = req(1.0, 0.0, &[("fpga", 1.0)]);
        let a = node.try_acquire(&one).unwrap();
        let _b = node.try_acquire(&one).unwrap();
        assert!(node.try_acquire(&one).is_none());
        node.release(&a);
        assert!(node.try_acquire(&one).is_some());
        assert!(!node.feasible(&req(1.0, 0.0, &[("tpu", 1.0)])));
        assert!(!node.feasible(&req(1.0, 0.0, &[("fpga", 3.0)])));
    }

    #[test]
    fn lent_cpus_come_back_even_when_oversubscribed() {
        let mut node = NodeResources::new(UNIT, &[], &[]).unwrap();
        let g = node.try_acquire(&req(1.0, 0.0, &[])).unwrap();
        node.lend_cpu(g.cpu);
        let other = node.try_acquire(&req(1.0, 0.0, &[])).unwrap();
        node.reclaim_cpu(g.cpu);
        assert_eq!(node.free_cpu(), -UNIT);
        node.release(&other);
        node.release(&g);
        assert_eq!(node.free_cpu(), UNIT);
    }

    #[test]
    fn a_shrunk_node_frees_nothing_until_running_tasks_give_back() {
        let mut node = NodeResources::new(4 * UNIT, &[], &[]).unwrap();
        let a = node.try_acquire(&req(2.0, 0.0, &[])).unwrap();
        let b = node.try_acquire(&req(2.0, 0.0, &[])).unwrap();
        node.set_cpu_total(2 * UNIT);
        assert_eq!(node.free_cpu(), -2 * UNIT);
        assert!(!node.fits_now(&req(1.0, 0.0, &[])));
        node.release(&a);
        assert!(!node.fits_now(&req(1.0, 0.0, &[])));
        node.release(&b);
        assert_eq!(node.free_cpu(), 2 * UNIT);
        node.set_cpu_total(3 * UNIT);
        assert_eq!(node.free_cpu(), 3 * UNIT);
        assert_eq!(node.totals().0, 3 * UNIT);
    }

    #[test]
    fn requests_describe_themselves() {
        assert_eq!(
            req(2.0, 0.5, &[("fpga", 1.0)]).to_string(),
            "2 CPU, 0.5 GPU, 1 fpga"
        );
        let node = NodeResources::new(UNIT * 4, &[0], &[]).unwrap();
        assert_eq!(node.describe_total(), "4 CPU, 1 GPU");
    }
}
