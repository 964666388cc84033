// The Stack panel's dead letters: listed from /api/dlq, redriven through /api/dlq/redrive
// (client/dlq.py). Every text is set with textContent.

const REREAD_MS = 60000; // read again when the status's count changes, or this often

export function deadLetterPanel({ $, api, el, rowsOrNote }) {
  let count = null; // the status's dead-letter count at the last listing
  let readAt = 0;

  async function load() {
    readAt = Date.now();
    try {
      const listing = await api("/api/dlq");
      const rows = listing.dead_letters.map(row);
      if (listing.truncated) $("dlq-report").textContent = `only the first ${listing.count} were read`;
      $("dead-letter-rows").replaceChildren(...rowsOrNote(rows, "no dead letters", 6));
      $("dlq-redrive-all").disabled = !listing.count;
    } catch (error) {
      count = null; // read again at the next status
      $("dlq-report").textContent = `dead letters unavailable: ${error.message}`;
    }
  }

  function row(letter) {
    const ident = letter.job_id || letter.message_id;
    const tr = el("tr");
    tr.dataset.ident = ident;
    const id = el("td", "mono", letter.job_id ? letter.job_id.slice(0, 8) : `message ${letter.message_id.slice(0, 8)}`);
    id.title = ident;
    const submitted = letter.submitted_at === null ? "–" : new Date(letter.submitted_at * 1000).toLocaleString();
    const action = el("td");
    if (letter.readable) {
      const button = el("button", null, "Redrive");
      button.type = "button";
      button.addEventListener("click", () => redrive({ ids: [ident] }));
      action.append(button);
    } else {
      action.className = "note";
      action.textContent = `unreadable (${letter.size} bytes: ${letter.preview}): cannot be redriven without force (python -m client dlq redrive --force ${letter.message_id})`;
    }
    tr.append(id, el("td", null, letter.kind ?? "–"), el("td", null, submitted),
      el("td", null, letter.receives ?? "–"), el("td", "why", letter.reason), action);
    return tr;
  }

  async function redrive(body) {
    for (const button of $("dlq").querySelectorAll("button")) button.disabled = true;
    try {
      const report = await api("/api/dlq/redrive", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(body),
      });
      $("dlq-report").textContent = reportText(report);
    } catch (error) {
      $("dlq-report").textContent = `redrive failed: ${error.message}`;
    }
    await load(); // rebuilds the rows and their buttons
  }

  $("dlq-redrive-all").addEventListener("click", () => redrive({ all: true }));
  return {
    onStatus(deadLetters) {
      if (deadLetters === count && Date.now() - readAt < REREAD_MS) return;
      count = deadLetters;
      load();
    },
  };
}

function reportText(report) {
  const how = report.method === "move-task" ? "SQS move task" : "sent one by one";
  const parts = [`redriven ${report.redriven.length} to the request queue (${how})`];
  for (const refused of report.refused) parts.push(`${refused.id} not redriven: ${refused.why}`);
  for (const id of report.missing) parts.push(`no dead letter ${id}`);
  for (const id of report.left_behind) parts.push(`${id} was sent back but is still a dead letter too: do not redrive it again`);
  return parts.join("; ");
}
