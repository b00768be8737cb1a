// Task kind check_exhaustivity: does every instance of the phrase have a mask? The verdict buttons
// are the task's label words (labels.js).

import {taskMasks} from "../layers.js";
import {el, term} from "../ui.js";
import {labelMode} from "./mode.js";

export const title = "Check every instance";

// a colour and a help line per word (a word missing here is shown all the same)
const HINTS = {
  complete: {tone: "ok", help: "complete: every instance has a mask"},
  missing: {tone: "warn", help: "some instances have no mask"},
  not_present: {tone: "bad", help: "the phrase is not in the image"},
};

export function create(entry, page) {
  const t = entry.task;
  const items = taskMasks(t, (text) => page.notify(text, "warn"));
  return labelMode(t, page, {
    hints: HINTS,
    question: () => ["Does every ", term(t.phrase), " in the image have a mask? ",
      el("span", {class: "muted", text: `(${items.length} mask${items.length === 1 ? "" : "s"} shown)`})],
    mount() { page.viewer.layers = items.map((m) => m.getLayer({fillAlpha: 90, edgeAlpha: 255})); },
  });
}
