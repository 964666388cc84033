// A job's life on the page: queued -> running (worker, elapsed, a progress bar where a
// fraction is known) -> done / failed / cancelled, and the cancel buttons.
// Text from workers is only ever set with textContent.

const FINISHED = new Set(["done", "failed", "cancelled"]);

export function isFinished(job) {
  return FINISHED.has(job.state);
}

export function stateText(job) {
  if (job.state === "running" && job.running) {
    const percent = job.running.fraction === null ? "" : ` · ${Math.round(100 * job.running.fraction)}%`;
    return `running ${Math.round(job.running.elapsed_s)} s${percent}`;
  }
  if (!isFinished(job) && job.cancel_requested) return `${job.state} · cancelling`;
  return job.state;
}

// The running line, the progress bar and the cancel button of a card or a stats entry.
export function showLifecycle(node, job, { api, onChange }) {
  let line = node.querySelector(".card-running");
  if (line) {
    const running = job.state === "running" && job.running;
    line.hidden = !running;
    if (running) {
      line.querySelector(".running-text").textContent = `on ${job.running.worker}`;
      const bar = line.querySelector(".card-progress");
      bar.hidden = job.running.fraction === null;
      if (job.running.fraction !== null) bar.value = job.running.fraction;
    }
  }
  let button = node.querySelector(".cancel");
  if (!button) {
    button = document.createElement("button");
    button.type = "button";
    button.className = "cancel";
    button.textContent = "Cancel";
    node.append(button);
  }
  button.hidden = isFinished(job) || job.cancel_requested;
  if (!button.dataset.bound) {
    button.dataset.bound = "1";
    button.addEventListener("click", () => {
      button.disabled = true;
      cancelJob(api, job.job_id).finally(() => {
        button.disabled = false;
        onChange();
      });
    });
  }
}

export async function cancelJob(api, jobId) {
  return api(`/api/jobs/${encodeURIComponent(jobId)}/cancel`, { method: "POST" });
}

export async function cancelAll(api) {
  return api("/api/jobs/cancel", { method: "POST" });
}
