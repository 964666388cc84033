// A job's 256-bin histogram on a canvas: bars, and the cumulative histogram as a line
// (0 to 100 %). Sets data-drawn="1" on the canvas when done.
export function drawHistogram(canvas, bins) {
  if (!Array.isArray(bins) || bins.length !== 256) return;
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth || 256;
  const height = canvas.clientHeight || 96;
  canvas.width = Math.round(width * ratio);
  canvas.height = Math.round(height * ratio);
  const g = canvas.getContext("2d");
  g.scale(ratio, ratio);
  g.clearRect(0, 0, width, height);
  const top = 4;
  const usable = height - top - 1;
  const highest = Math.max(...bins, 1);
  const total = bins.reduce((a, b) => a + b, 0) || 1;
  const step = width / 256;
  g.fillStyle = "#51606f";
  bins.forEach((count, i) => {
    const h = (count / highest) * usable;
    g.fillRect(i * step, height - 1 - h, Math.max(step, 1), h);
  });
  g.strokeStyle = "#e8590c";
  g.lineWidth = 2;
  g.beginPath();
  let running = 0;
  bins.forEach((count, i) => {
    running += count;
    const x = (i + 0.5) * step;
    const y = height - 1 - (running / total) * usable;
    if (i === 0) g.moveTo(x, y);
    else g.lineTo(x, y);
  });
  g.stroke();
  g.strokeStyle = "#9aa5b1";
  g.lineWidth = 1;
  g.beginPath();
  g.moveTo(0, height - 0.5);
  g.lineTo(width, height - 0.5);
  g.stroke();
  canvas.dataset.drawn = "1";
}
