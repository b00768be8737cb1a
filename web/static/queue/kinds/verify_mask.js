// Task kind verify_mask: is the target mask (yellow) one whole instance of the phrase? The verdict
// buttons are the task's label words (labels.js); Z zooms to the mask and back.

import * as RLE from "../rle.js";
import {TARGET_COLOR, taskMasks} from "../layers.js";
import {el, term} from "../ui.js";
import {labelMode} from "./mode.js";

export const title = "Verify mask";

// a colour and a help line per word (a word missing here is shown all the same)
const HINTS = {
  accept: {tone: "ok", help: "accept: the mask is one correct, complete instance"},
  reject: {tone: "bad", help: "reject: wrong object or sloppy mask"},
  ungroundable: {tone: "warn", help: "ungroundable: the phrase names nothing one could outline"},
};

export function create(entry, page) {
  const t = entry.task;
  const items = taskMasks(t, (text) => page.notify(text, "warn"));
  const target = items.find((m) => m.id === t.target_mask_id);
  if (target) target.color = TARGET_COLOR;
  let zoomed = false;
  const zoom = () => {
    if (!target || zoomed) { page.viewer.fit(); zoomed = false; return; }
    const [x, y, w, h] = RLE.bbox(target.bits, target.h, target.w);
    if (w) { page.viewer.fitBox([x, y, w, h]); zoomed = true; }
  };
  return labelMode(t, page, {
    hints: HINTS,
    keys: {z: zoom},
    help: [["Z", "zoom to the mask / back"]],
    question: () => ["Is the ", el("span", {class: "target-word", text: "yellow"}), " mask one whole instance of ",
      term(t.phrase), ", and nothing else?"],
    mount() {
      zoomed = false;
      const others = items.filter((m) => m !== target).map((m) => {
        const layer = m.getLayer({fillAlpha: 60, edgeAlpha: 200});
        if (layer) layer.alpha = 0.35;
        return layer;
      });
      page.viewer.layers = [...others, target ? target.getLayer({fillAlpha: 110, edgeAlpha: 255}) : null];
      if (!target) page.stageMessage("The mask to verify is missing from this task: skip it (K).", true);
    },
  });
}
