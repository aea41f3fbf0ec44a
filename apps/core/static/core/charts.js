/* Draws the report charts (templates/admin/reports/_chart.html): each
   <canvas data-chart="ID"> gets the figures of the JSON script element #ID. Chart.js is the
   vendored copy in core/vendor/chartjs; the table beside each chart holds the same figures. */
"use strict";

document.addEventListener("DOMContentLoaded", function () {
  if (typeof Chart === "undefined") {
    return; // the tables still show every figure
  }
  document.querySelectorAll("canvas[data-chart]").forEach(function (canvas) {
    var spec = JSON.parse(document.getElementById(canvas.dataset.chart).textContent);
    new Chart(canvas, {
      type: "bar",
      data: { labels: spec.labels, datasets: spec.datasets },
      options: {
        indexAxis: spec.horizontal ? "y" : "x",
        animation: false,
        responsive: true,
        maintainAspectRatio: false,
        scales: {
          x: { stacked: spec.stacked, beginAtZero: true },
          y: { stacked: spec.stacked, beginAtZero: true },
        },
        plugins: { legend: { display: spec.datasets.length > 1 } },
      },
    });
  });
});
