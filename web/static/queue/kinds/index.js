// The task kinds the page can show: kind word (as the API sends it) → its module
// ({title, create(entry, page) → mode}, see mode.js).

import * as checkExhaustivity from "./check_exhaustivity.js";
import * as correct from "./correct.js";
import * as verifyMask from "./verify_mask.js";
import * as videoCheckExhaustivity from "../video/kinds/check_exhaustivity.js";
import * as videoCorrect from "../video/kinds/correct.js";
import * as videoVerifyMask from "../video/kinds/verify_mask.js";

export const KINDS = {verify_mask: verifyMask, check_exhaustivity: checkExhaustivity, correct};
// the same kinds on a video task (task.media === "video"): player, timeline, masklets
export const VIDEO_KINDS = {verify_mask: videoVerifyMask, check_exhaustivity: videoCheckExhaustivity,
  correct: videoCorrect};

/** The name the page shows for a kind (the word itself for a kind it does not know). */
export function kindTitle(kind) { return KINDS[kind]?.title || kind; }

/** The mode of a leased task; throws for a kind the page cannot show. */
export function createMode(entry, page) {
  const module = (entry.task.media === "video" ? VIDEO_KINDS : KINDS)[entry.task.kind];
  if (!module) throw new Error(`unknown task kind ${entry.task.kind}`);
  return module.create(entry, page);
}
