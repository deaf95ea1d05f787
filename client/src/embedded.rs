//! The embedded runtime: the cluster's scheduling core driving one in-process
//! worker whose threads are the rayon pool. No sockets, no serialization:
//! chunks are shared `Arc`s and fused outputs are written in place.

use std::cell::Cell;
use std::collections::{HashMap, VecDeque};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use accel_core::exec::{
    AfterFailure, Offload, after_failure, run_task_into_or_back, run_task_with,
};
use accel_core::kernel::OutSlice;
use accel_core::{Chunk, ChunkKey, Error, Plan, Result};
use accel_scheduler::{ClientId, Command, Core, Event, JobId, TaskRef, WorkerId};

/// What a run did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RunStats {
    pub tasks: usize,
    /// Largest total size of chunks held at once (excluding the result arrays).
    pub peak_bytes: usize,
    pub elapsed: Duration,
    /// Tasks run again because a worker holding their chunks was lost.
    pub recomputed: usize,
}

const JOB: JobId = JobId(0);
const ME: ClientId = ClientId(0);
const WORKER: WorkerId = WorkerId(0);

/// A task to start: its inputs (`None`: one is missing) and, for a chunk
/// written straight into the result, its rows.
struct Start<'a> {
    task: TaskRef,
    /// The chunks the inputs are, in order.
    inputs: Vec<TaskRef>,
    args: Option<Vec<Arc<Chunk>>>,
    dest: Option<Vec<OutSlice<'a>>>,
}

/// What running a task gave; the inputs it found lost with a GPU (their
/// values were only there), which are recomputed before it runs again; and
/// the result rows it was to write, handed back for that run.
type Ran<'a> = (
    Result<Option<Arc<Chunk>>>,
    Vec<(TaskRef, Arc<Chunk>)>,
    Option<Vec<OutSlice<'a>>>,
);

/// Everything the pool's threads share while a plan runs. The thread that
/// finishes a task reports it here and starts what the core assigns next:
/// no thread waits to be woken between one task and the next.
struct Driver<'a, 'p, F> {
    core: Core,
    store: HashMap<ChunkKey, Arc<Chunk>>,
    direct: HashMap<ChunkKey, Vec<OutSlice<'a>>>,
    on_output: F,
    /// Output numbers of each stage.
    output_of: Vec<Vec<usize>>,
    /// Stages read by another stage (the others' chunks are handed over, not kept).
    consumed: Vec<bool>,
    held: usize,
    peak_bytes: usize,
    done: u64,
    total: u64,
    progress: &'p crate::progress::Progress,
    failure: Option<Error>,
    finished: bool,
    /// Tasks run again because chunks they made were lost (with a GPU).
    recomputed: usize,
}

impl<'a, F> Driver<'a, '_, F>
where
    F: FnMut(usize, ChunkKey, &Arc<Chunk>) -> Result<()>,
{
    /// Carries out the core's commands (and what answering them leads to);
    /// returns the tasks to start.
    fn apply(&mut self, mut commands: Vec<Command>) -> Vec<Start<'a>> {
        let mut starts = Vec::new();
        loop {
            let mut events = Vec::new();
            for cmd in commands.drain(..) {
                match cmd {
                    Command::Assign { tasks, .. } => {
                        for a in tasks {
                            let args = a
                                .inputs
                                .iter()
                                .map(|(t, _)| self.store.get(&t.key).cloned())
                                .collect();
                            let dest = self.direct.remove(&a.task.key);
                            starts.push(Start {
                                task: a.task,
                                inputs: a.inputs.iter().map(|(t, _)| *t).collect(),
                                args,
                                dest,
                            });
                        }
                    }
                    Command::Release { chunks, .. } => {
                        for t in chunks {
                            if let Some(c) = self.store.remove(&t.key) {
                                self.held -= c.nbytes();
                            }
                        }
                    }
                    // One worker never has anyone to give tasks to.
                    Command::Steal { worker, id, tasks } => events.push(Event::StealReply {
                        worker,
                        id,
                        stolen: Vec::new(),
                        refused: tasks,
                    }),
                    Command::JobDone { recomputed, .. } => {
                        self.finished = true;
                        self.recomputed = recomputed;
                    }
                    // One worker in this process: it never retires or copies,
                    // and everything goes when the run ends.
                    Command::Replicate { .. }
                    | Command::Retired { .. }
                    | Command::OutputReady { .. }
                    | Command::JobForgotten { .. } => {}
                    Command::JobFailed { error, .. } => {
                        self.failure.get_or_insert(Error::Task {
                            task: "job".into(),
                            message: error,
                        });
                    }
                }
            }
            if events.is_empty() {
                return starts;
            }
            for e in events {
                commands.extend(self.core.handle(e));
            }
            commands.extend(self.core.schedule());
        }
    }

    /// Takes a task's result; returns the tasks to start next. After a
    /// failure nothing more starts: what is running drains.
    fn finished(&mut self, task: TaskRef, (result, lost, rows): Ran<'a>) -> Vec<Start<'a>> {
        if self.failure.is_some() {
            return Vec::new();
        }
        if let Some(rows) = rows {
            self.direct.insert(task.key, rows);
        }
        let event = match result {
            // Inputs a lost GPU held: gone from the store, recomputed.
            // A chunk made again under the same key since stays, and is not
            // reported: the task runs again on it.
            Err(_) if !lost.is_empty() => {
                let mut missing = Vec::with_capacity(lost.len());
                for (t, gone) in &lost {
                    match self.store.get(&t.key) {
                        Some(c) if !Arc::ptr_eq(c, gone) => continue,
                        Some(_) => {
                            if let Some(c) = self.store.remove(&t.key) {
                                self.held -= c.nbytes();
                            }
                        }
                        None => {}
                    }
                    missing.push((*t, WORKER));
                }
                Event::InputsMissing {
                    worker: WORKER,
                    task,
                    missing,
                }
            }
            Ok(chunk) => {
                let nbytes = chunk.as_ref().map_or(0, |c| c.nbytes());
                if let Some(chunk) = chunk {
                    for &o in &self.output_of[task.key.stage.index()] {
                        if let Err(e) = (self.on_output)(o, task.key, &chunk) {
                            self.failure.get_or_insert(e);
                        }
                    }
                    if self.consumed[task.key.stage.index()] {
                        self.held += nbytes;
                        self.peak_bytes = self.peak_bytes.max(self.held);
                        self.store.insert(task.key, chunk);
                    }
                }
                // A task run again counts once.
                self.done = (self.done + 1).min(self.total);
                self.progress.update(self.done, self.total);
                Event::TaskFinished {
                    worker: WORKER,
                    task,
                    nbytes: nbytes as u64,
                }
            }
            Err(e) => Event::TaskFailed {
                worker: WORKER,
                task,
                message: match e {
                    Error::Task { message, .. } => message,
                    other => other.to_string(),
                },
            },
        };
        let mut commands = self.core.handle(event);
        commands.extend(self.core.schedule());
        self.apply(commands)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Runs one task: its chunk, or `None` when it was written into its rows.
fn execute<'a>(plan: &Plan, start: Start<'a>, offload: Option<&dyn Offload>) -> Ran<'a> {
    let key = start.task.key;
    let Some(args) = start.args else {
        return (
            Err(Error::Graph(format!("inputs of {key:?} are missing"))),
            Vec::new(),
            None,
        );
    };
    let lost = |gone: &dyn Fn(&Chunk) -> bool| -> Vec<(TaskRef, Arc<Chunk>)> {
        args.iter()
            .zip(&start.inputs)
            .filter(|(c, _)| gone(c))
            .map(|(c, t)| (*t, c.clone()))
            .collect()
    };
    let known = lost(&|c| c.lost());
    if !known.is_empty() {
        let error = Error::Device("inputs lost with the GPU".into());
        return (Err(error), known, start.dest);
    }
    let writes_rows = start.dest.is_some();
    let run = |dest: Option<Vec<OutSlice<'a>>>| {
        catch_unwind(AssertUnwindSafe(|| match dest {
            Some(rows) => match run_task_into_or_back(plan, key, &args, rows, offload) {
                Ok(()) => (Ok(None), None),
                Err((e, back)) => (Err(e), back),
            },
            None => (run_task_with(plan, key, &args, offload).map(Some), None),
        }))
        .unwrap_or_else(|p| (Err(panicked(&p)), None))
    };
    let mut tries = 0;
    let mut result = run(start.dest);
    loop {
        tries += 1;
        match result {
            // A failure on inputs the GPU cannot give back: they are lost,
            // and the task runs again once they are recomputed; one whose
            // inputs all read back now runs again at once. One whose rows
            // of the result went with the failed run (some may be written)
            // fails the job instead.
            (Err(e), back) if !writes_rows || back.is_some() => {
                match after_failure(&e, &args, tries) {
                    AfterFailure::RunAgain => result = run(back),
                    AfterFailure::Lost(gone) => {
                        let gone = gone
                            .into_iter()
                            .filter_map(|i| Some((*start.inputs.get(i)?, args.get(i)?.clone())))
                            .collect();
                        return (Err(e), gone, back);
                    }
                    AfterFailure::Fails => return (Err(e), Vec::new(), back),
                }
            }
            (other, _) => return (other, Vec::new(), None),
        }
    }
}

/// Results waiting for the core, and whether a thread is taking them in.
#[derive(Default)]
struct Inbox<'a> {
    results: Vec<(TaskRef, Ran<'a>)>,
    busy: bool,
}

/// What the pool's threads share: the core's side, and the results it has
/// not taken in yet. A thread that finishes a task while another is at the
/// core leaves its result in the inbox and moves on (no thread waits for
/// the lock); the one at the core takes everything in before it leaves.
///
/// Each part the threads write sits on cache lines of its own: `Shared`
/// lives on the caller's stack, and where its fields fell on the lines
/// depended on the stack's offset, which moves with the size of the
/// environment. With the counters an idle thread spins on sharing a line
/// with a lock the working thread takes per task, heat on a 200² plate ran
/// 20 % slower in one process out of three.
struct Shared<'a, 'p, F> {
    driver: Lines<Mutex<Driver<'a, 'p, F>>>,
    inbox: Lines<Mutex<Inbox<'a>>>,
    /// Tasks assigned and not started yet, and how many there are: each has
    /// a pool job to start it, and a thread looking for work takes one
    /// before that job does.
    pending: Lines<Mutex<VecDeque<Start<'a>>>>,
    queued: Lines<AtomicUsize>,
    /// Set once the job is done or failed: nothing more will be assigned.
    over: AtomicBool,
    /// A GPU offered every fused elementwise kernel first.
    offload: Option<Arc<dyn Offload>>,
}

/// A value on cache lines of its own (two: the pair a core's prefetcher
/// fetches together).
#[repr(align(128))]
#[derive(Default)]
struct Lines<T>(T);

impl<T> std::ops::Deref for Lines<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<'a, F> Shared<'a, '_, F>
where
    F: FnMut(usize, ChunkKey, &Arc<Chunk>) -> Result<()>,
{
    /// Hands a result to the core; returns the tasks to start (none if
    /// another thread is at the core: it takes this result in too).
    fn report(&self, task: TaskRef, result: Ran<'a>) -> Vec<Start<'a>> {
        let mut batch = {
            let mut inbox = lock(&self.inbox);
            inbox.results.push((task, result));
            if inbox.busy {
                return Vec::new();
            }
            inbox.busy = true;
            std::mem::take(&mut inbox.results)
        };
        let mut starts = Vec::new();
        loop {
            {
                let mut driver = lock(&self.driver);
                let took = catch_unwind(AssertUnwindSafe(|| {
                    let mut got = Vec::new();
                    for (task, result) in batch.drain(..) {
                        got.extend(driver.finished(task, result));
                    }
                    got
                }));
                match took {
                    Ok(got) => starts.extend(got),
                    // A fault while taking a result in (a bug, or a panic in
                    // the caller's output handler) fails the run with an
                    // error, not a panic through the pool; nothing more starts.
                    Err(p) => {
                        driver.failure.get_or_insert(panicked(&p));
                        starts.clear();
                        batch.clear();
                    }
                }
                if driver.finished || driver.failure.is_some() {
                    self.over.store(true, Ordering::Release);
                }
            }
            let mut inbox = lock(&self.inbox);
            if inbox.results.is_empty() {
                inbox.busy = false;
                return starts;
            }
            batch = std::mem::take(&mut inbox.results);
        }
    }
}

/// How long a thread that ran out of tasks keeps looking for the next one
/// before it goes back to the pool (whose idle threads soon sleep). The
/// steps of a time loop end a task per thread at about the same time, and
/// the next ones come when the last of them is reported: tens of
/// microseconds away, where waking a sleeping thread took as long again
/// (about one step in two slept on heat 200²).
const IDLE_SPIN: Duration = Duration::from_micros(100);

/// Queues `starts` with a pool job for each. A thread runs its task,
/// reports it, and goes on with the first task the core assigns next (the
/// others are queued).
fn spawn_all<'s, 'a: 's, 'p: 's, F>(
    scope: &rayon::Scope<'s>,
    shared: &'s Shared<'a, 'p, F>,
    plan: &'s Plan,
    starts: Vec<Start<'a>>,
) where
    F: FnMut(usize, ChunkKey, &Arc<Chunk>) -> Result<()> + Send + 's,
{
    let n = starts.len();
    if n == 0 {
        return;
    }
    {
        let mut pending = lock(&shared.pending);
        pending.extend(starts);
        shared.queued.store(pending.len(), Ordering::Release);
    }
    for _ in 0..n {
        scope.spawn(move |scope| run_pending(scope, shared, plan));
    }
}

thread_local! {
    /// Whether this thread is inside a task: a pool job it runs then is one
    /// it picked up while waiting within that task's own parallel kernel.
    static IN_TASK: Cell<bool> = const { Cell::new(false) };
}

/// Runs queued tasks, in the order the core assigned them (and what each
/// leads to), until none comes within [`IDLE_SPIN`] of the last. A job whose
/// task another thread took leaves at once; one run from within a task (a
/// thread waiting in that task's parallel kernel) runs one task and what it
/// leads to, and leaves: the task it interrupted is waiting for it.
fn run_pending<'s, 'a: 's, 'p: 's, F>(
    scope: &rayon::Scope<'s>,
    shared: &'s Shared<'a, 'p, F>,
    plan: &'s Plan,
) where
    F: FnMut(usize, ChunkKey, &Arc<Chunk>) -> Result<()> + Send + 's,
{
    let nested = IN_TASK.with(Cell::get);
    let mut ran = false;
    loop {
        let taken = {
            let mut pending = lock(&shared.pending);
            let start = pending.pop_front();
            shared.queued.store(pending.len(), Ordering::Release);
            start
        };
        let Some(start) = taken else {
            if ran && !nested && await_pending(shared) {
                continue;
            }
            return;
        };
        ran = true;
        let mut next = Some(start);
        while let Some(start) = next.take() {
            let task = start.task;
            let result = {
                IN_TASK.with(|t| t.set(true));
                let r = execute(plan, start, shared.offload.as_deref());
                IN_TASK.with(|t| t.set(nested));
                r
            };
            let mut more = shared.report(task, result);
            if !more.is_empty() {
                let mine = follow_on(&more, task);
                next = Some(more.remove(mine));
            }
            spawn_all(scope, shared, plan, more);
        }
        if nested {
            return;
        }
    }
}

/// Which of the tasks just assigned the thread that ran `done` goes on
/// with: the one at the same chunk position that reads its result (the next
/// step of a time loop over that chunk, whose input is still in this core's
/// cache), else the first that reads its result, else the first.
fn follow_on(starts: &[Start<'_>], done: TaskRef) -> usize {
    let reads = |s: &Start<'_>| s.inputs.iter().any(|t| t.key == done.key);
    starts
        .iter()
        .position(|s| s.task.key.chunk == done.key.chunk && reads(s))
        .or_else(|| starts.iter().position(reads))
        .unwrap_or(0)
}

/// Spins this many times between yields of the thread: where the pool has
/// more threads than free cores, a spinning thread must not keep the one
/// at the core (which assigns the next tasks) from running.
const SPINS_PER_YIELD: u32 = 256;

/// Waits up to [`IDLE_SPIN`] for a queued task; false when none came or
/// the job is over.
fn await_pending<F>(shared: &Shared<'_, '_, F>) -> bool {
    let until = Instant::now() + IDLE_SPIN;
    let mut spins = 0u32;
    loop {
        if shared.queued.load(Ordering::Acquire) > 0 {
            return true;
        }
        if shared.over.load(Ordering::Acquire) || Instant::now() >= until {
            return false;
        }
        spins += 1;
        if spins.is_multiple_of(SPINS_PER_YIELD) {
            std::thread::yield_now();
        } else {
            std::hint::spin_loop();
        }
    }
}

/// Runs every task of `plan`. Each chunk of an output stage is handed to
/// `on_output(output_number, key, chunk)` as soon as it exists, except the
/// chunks listed in `direct`, which are written straight into their rows.
pub fn run_plan(
    plan: Arc<Plan>,
    direct: HashMap<ChunkKey, Vec<OutSlice<'_>>>,
    on_output: impl FnMut(usize, ChunkKey, &Arc<Chunk>) -> Result<()> + Send,
    progress: &crate::progress::Progress,
    offload: Option<Arc<dyn Offload>>,
) -> Result<RunStats> {
    let start = Instant::now();
    let mut core = Core::new();
    let threads = rayon::current_num_threads() as u32;
    core.handle(Event::WorkerJoined {
        worker: WORKER,
        name: "embedded".into(),
        nthreads: threads,
        memory_limit: None,
        functions: plan.function_names(),
        gpus: 0,
    });
    let mut first = core.handle(Event::JobSubmitted {
        job: JOB,
        client: ME,
        plan: plan.clone(),
    });
    first.extend(core.schedule());
    let mut output_of: Vec<Vec<usize>> = vec![Vec::new(); plan.stages.len()];
    for (o, s) in plan.outputs.iter().enumerate() {
        output_of[s.index()].push(o);
    }
    let mut consumed = vec![false; plan.stages.len()];
    for st in &plan.stages {
        for i in &st.inputs {
            consumed[i.index()] = true;
        }
    }
    let shared = Shared {
        offload,
        inbox: Lines::default(),
        pending: Lines::default(),
        queued: Lines(AtomicUsize::new(0)),
        over: AtomicBool::new(false),
        driver: Lines(Mutex::new(Driver {
            core,
            store: HashMap::new(),
            direct,
            on_output,
            output_of,
            consumed,
            held: 0,
            peak_bytes: 0,
            done: 0,
            total: plan.task_count() as u64,
            progress,
            failure: None,
            finished: false,
            recomputed: 0,
        })),
    };
    rayon::in_place_scope(|scope| {
        let starts = lock(&shared.driver).apply(first);
        spawn_all(scope, &shared, &plan, starts);
    });
    let mut driver = shared
        .driver
        .0
        .into_inner()
        .unwrap_or_else(PoisonError::into_inner);
    // Outputs that were pasted are no longer needed in the store.
    driver.core.handle(Event::ResultsFetched { job: JOB });
    if let Some(e) = driver.failure {
        return Err(e);
    }
    if !driver.finished {
        return Err(Error::Graph(
            "the plan stopped before every task ran".into(),
        ));
    }
    Ok(RunStats {
        tasks: plan.task_count(),
        peak_bytes: driver.peak_bytes,
        elapsed: start.elapsed(),
        recomputed: driver.recomputed,
    })
}

fn panicked(p: &Box<dyn std::any::Any + Send>) -> Error {
    let msg = p
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into());
    Error::Task {
        task: String::new(),
        message: format!("panicked: {msg}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use accel_core::buffer::{Buffer, DeviceCopy};
    use accel_core::{DType, StageId};
    use std::sync::atomic::AtomicU32;

    /// A device copy whose first read fails (a device busy for a moment).
    #[derive(Debug)]
    struct FailsOnce {
        values: Vec<f64>,
        reads: AtomicU32,
    }

    impl DeviceCopy for FailsOnce {
        fn download(&self) -> std::result::Result<Buffer, String> {
            match self.reads.fetch_add(1, Ordering::Relaxed) {
                0 => Err("the device was busy".into()),
                _ => Ok(Buffer::F64(self.values.clone())),
            }
        }
    }

    fn flaky(values: &[f64]) -> (Arc<Chunk>, Arc<FailsOnce>) {
        let copy = Arc::new(FailsOnce {
            values: values.to_vec(),
            reads: AtomicU32::new(0),
        });
        let chunk = Chunk::on_device(vec![values.len()], DType::F64, copy.clone());
        (Arc::new(chunk), copy)
    }

    /// The last stage's task of `x * 2 + 1` over 8 values in one chunk.
    fn doubling() -> (Plan, TaskRef, TaskRef, Vec<f64>) {
        let data: Vec<f64> = (0..8).map(|k| k as f64 * 0.5).collect();
        let x = crate::from_ndarray(&ndarray::Array1::from(data.clone()), 8);
        let plan = (x * 2.0 + 1.0).plan().unwrap().plan;
        let last = plan.stages.len() as u32 - 1;
        let task = |stage| TaskRef {
            job: JOB,
            key: ChunkKey {
                stage: StageId(stage),
                chunk: 0,
            },
        };
        (plan, task(last), task(0), data)
    }

    #[test]
    fn a_read_back_that_fails_once_runs_the_task_again() {
        let (plan, task, input, data) = doubling();
        let want: Vec<f64> = data.iter().map(|x| x * 2.0 + 1.0).collect();
        // Into a chunk of its own.
        let (chunk, copy) = flaky(&data);
        let start = Start {
            task,
            inputs: vec![input],
            args: Some(vec![chunk]),
            dest: None,
        };
        let (result, lost, _) = execute(&plan, start, None);
        let got = result.unwrap().expect("a chunk");
        assert_eq!(*got.data().unwrap(), Buffer::F64(want.clone()));
        assert!(lost.is_empty());
        assert_eq!(copy.reads.load(Ordering::Relaxed), 2);
        // Straight into the result's rows.
        let (chunk, copy) = flaky(&data);
        let mut out = vec![f64::NAN; 8];
        let start = Start {
            task,
            inputs: vec![input],
            args: Some(vec![chunk]),
            dest: Some(vec![OutSlice::F64(&mut out)]),
        };
        let (result, lost, back) = execute(&plan, start, None);
        assert!(result.unwrap().is_none() && lost.is_empty() && back.is_none());
        assert_eq!(copy.reads.load(Ordering::Relaxed), 2);
        assert_eq!(out, want);
    }

    #[test]
    fn a_panic_while_taking_a_result_in_fails_the_run_with_an_error() {
        let (plan, ..) = doubling();
        let progress = crate::progress::Progress::new(false, plan.task_count() as u64);
        let out = |_: usize, _: ChunkKey, _: &Arc<Chunk>| -> Result<()> { panic!("on purpose") };
        let e = run_plan(Arc::new(plan), HashMap::new(), out, &progress, None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("panicked: on purpose"), "{e}");
    }

    #[test]
    fn a_plan_knows_its_tasks_from_ones_it_does_not_have() {
        let (plan, task, input, _) = doubling();
        assert!(plan.has_task(task.key) && plan.has_task(input.key));
        let beyond = |stage: u32, chunk: u32| ChunkKey {
            stage: StageId(stage),
            chunk,
        };
        assert!(!plan.has_task(beyond(task.key.stage.0, 1)));
        assert!(!plan.has_task(beyond(plan.stages.len() as u32, 0)));
        assert!(!plan.has_task(beyond(u32::MAX, u32::MAX)));
    }

    #[test]
    fn an_input_that_never_reads_back_is_reported_lost() {
        #[derive(Debug)]
        struct Gone;
        impl DeviceCopy for Gone {
            fn download(&self) -> std::result::Result<Buffer, String> {
                Err("the device stopped answering".into())
            }
        }
        let (plan, task, input, _) = doubling();
        let gone = Arc::new(Chunk::on_device(vec![8], DType::F64, Arc::new(Gone)));
        let start = Start {
            task,
            inputs: vec![input],
            args: Some(vec![gone.clone()]),
            dest: None,
        };
        let (result, lost, _) = execute(&plan, start, None);
        let e = result.unwrap_err().to_string();
        assert!(e.contains("stopped answering"), "{e}");
        assert_eq!(lost.len(), 1);
        assert_eq!(lost[0].0, input);
        assert!(Arc::ptr_eq(&lost[0].1, &gone));
    }
}
