/* slumwatch report: year control for the map (plain JS, no dependencies, works offline). */
(function () {
  "use strict";
  var dataNode = document.getElementById("report-data");
  var control = document.getElementById("year-control");
  var slider = document.getElementById("year-slider");
  var image = document.getElementById("year-map");
  if (!dataNode || !control || !slider || !image) {
    return;
  }
  var maps = JSON.parse(dataNode.textContent || "[]");
  if (!maps.length) {
    return;
  }
  var output = document.getElementById("year-output");
  var caption = document.getElementById("year-caption");
  var prev = document.getElementById("year-prev");
  var next = document.getElementById("year-next");
  var rows = document.querySelectorAll("table.years tbody tr[data-year]");

  function show(index) {
    var i = Math.max(0, Math.min(maps.length - 1, index));
    var entry = maps[i];
    image.src = entry.src;
    image.alt = entry.alt;
    slider.value = String(i);
    slider.setAttribute("aria-valuetext", String(entry.year));
    if (output) { output.textContent = String(entry.year); }
    if (caption) { caption.textContent = entry.caption; }
    if (prev) { prev.disabled = i === 0; }
    if (next) { next.disabled = i === maps.length - 1; }
    for (var r = 0; r < rows.length; r++) {
      var selected = rows[r].getAttribute("data-year") === String(entry.year);
      rows[r].classList.toggle("selected", selected);
      if (selected) { rows[r].setAttribute("aria-current", "true"); } else { rows[r].removeAttribute("aria-current"); }
    }
  }

  slider.addEventListener("input", function () { show(parseInt(slider.value, 10)); });
  if (prev) { prev.addEventListener("click", function () { show(parseInt(slider.value, 10) - 1); }); }
  if (next) { next.addEventListener("click", function () { show(parseInt(slider.value, 10) + 1); }); }
  control.hidden = false;
  show(parseInt(slider.value, 10));
})();
