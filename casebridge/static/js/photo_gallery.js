// The photo gallery of a case: a photo opens full size in a dialog; there the arrow keys go to
// the previous or next photo, Home and End to the first or last, and Escape closes it and gives
// the focus back to the photo it was opened from. Alt text is the case's neutral wording only.
(function () {
  "use strict";
  const gallery = document.getElementById("photo-gallery");
  if (!gallery) return;
  const buttons = Array.from(gallery.querySelectorAll("[data-photo]"));
  const view = gallery.querySelector("[data-view]");
  const image = view.querySelector("[data-full-image]");
  const title = view.querySelector("[data-title]");
  const noPreview = view.querySelector("[data-no-preview]");
  const download = view.querySelector("[data-download-link]");
  const closeButton = view.querySelector("[data-close]");
  let current = -1;

  function show(index) {
    current = Math.max(0, Math.min(buttons.length - 1, index));
    const photo = buttons[current].dataset;
    title.textContent = photo.alt;
    download.href = photo.download;
    if (photo.full) {
      image.hidden = false;
      noPreview.hidden = true;
      image.alt = photo.alt;
      image.src = photo.full;
    } else {
      image.hidden = true;
      image.removeAttribute("src");
      noPreview.hidden = false;
    }
    gallery.dataset.current = String(current);
  }

  function open(index) {
    show(index);
    view.hidden = false;
    document.body.classList.add("photo-view-open");
    closeButton.focus();
  }

  function close() {
    view.hidden = true;
    document.body.classList.remove("photo-view-open");
    image.removeAttribute("src");
    const from = buttons[current];
    delete gallery.dataset.current;
    if (from) from.focus();
  }

  buttons.forEach((button, index) => button.addEventListener("click", () => open(index)));
  view.querySelector("[data-previous]").addEventListener("click", () => show(current - 1));
  view.querySelector("[data-next]").addEventListener("click", () => show(current + 1));
  closeButton.addEventListener("click", close);
  view.addEventListener("keydown", (event) => {
    const moves = { ArrowLeft: current - 1, ArrowUp: current - 1, ArrowRight: current + 1, ArrowDown: current + 1 };
    if (event.key === "Escape") close();
    else if (event.key in moves) show(moves[event.key]);
    else if (event.key === "Home") show(0);
    else if (event.key === "End") show(buttons.length - 1);
    else if (event.key === "Tab") {
      // Focus stays in the dialog while it is open.
      const focusable = Array.from(view.querySelectorAll("button, a[href]"));
      const first = focusable[0];
      const last = focusable[focusable.length - 1];
      if (event.shiftKey && document.activeElement === first) last.focus();
      else if (!event.shiftKey && document.activeElement === last) first.focus();
      else return;
    } else return;
    event.preventDefault();
  });
})();
