"""Every sentence a person reads, in one gettext catalogue shared by the bots, the gateway's delivery and the page.

Messages are named here (``MESSAGES``, ``PLURALS``) with their English text as the gettext ``msgid``; the
translations live in ``locales/<lang>/LC_MESSAGES/detectbot.po`` (compiled to ``.mo`` beside it). Plurals follow
each language's own rules (``ngettext``: Russian has three forms), and the object classes a model finds have
their own entries (``msgctxt "object"`` for a label on the image, ``"count"`` for "4 persons" in a caption).

To add a language, see ``docs/translating.md``: extract, ``pybabel init -l xx``, translate, compile.
"""

from __future__ import annotations

import gettext
import math
from collections import Counter
from collections.abc import Iterable, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

DOMAIN = "detectbot"
LOCALES = Path(__file__).parent / "locales"
DEFAULT_LANGUAGE = "en"


def N_(message: str) -> str:
    """Marks a message for extraction (``pybabel extract -k N_``); translated when used."""
    return message


def NN_(singular: str, plural: str) -> tuple[str, str]:
    """Marks a message with plural forms (``-k NN_:1,2``)."""
    return singular, plural


def CN_(context: str, singular: str, plural: str) -> tuple[str, str, str]:
    """Marks a message with a context and plural forms (``-k CN_:1c,2,3``)."""
    return context, singular, plural


def C_(context: str, message: str) -> tuple[str, str]:
    """Marks a message with a context (``-k C_:1c,2``)."""
    return context, message


MESSAGES: dict[str, str] = {
    # the bots' answers
    "help": N_(
        "Send me a photo and I'll send it back with the objects I find boxed and labelled.\n"
        "In groups, caption the photo with /detect or reply /detect to a photo.\n"
        "/settings chooses what I show; /forget deletes your photos and results."
    ),
    "discord_help": N_(
        "I find objects in photos and send them back boxed and labelled.\n"
        "Use /detect with a photo attached, or on a message with photos choose Apps → Detect objects.\n"
        "/settings chooses what I show; /forget deletes your photos and results."
    ),
    "accepted_hint": N_("Send me a photo (JPEG, PNG or WebP) and I'll find the objects in it."),
    "discord_hint": N_(
        "Attach a photo (JPEG, PNG or WebP) to /detect, or use Apps → Detect objects on a photo message."
    ),
    "group_hint": N_("Reply /detect to a photo, or caption a photo with /detect."),
    "too_big": N_("That file is {size_mb} MB; the limit is {limit_mb} MB. Please send a smaller photo."),
    "not_allowed": N_("Unknown command. Send a photo, or /help."),
    "received": N_("Got it — queuing…"),
    "queued": N_("Queued — #{position} in line, about {eta}."),
    "queued_now": N_("Got it — working on it now."),
    "processing": N_("Working on it…"),
    "status_moved": N_("Still in line — I'll keep you posted below."),
    "no_worker": N_("No worker is running right now. Your photo is safe and will be done as soon as one starts."),
    "waiting_for_service": N_("The service is briefly unavailable. I'm keeping your photo and will queue it soon."),
    "unavailable": N_("I can't take photos right now. Please try again in a minute."),
    "busy": N_("I'm busy right now. Please try again in about {seconds} s."),
    "rate_limited": N_("That's a lot of photos at once. Please wait a minute, then send more."),
    "cancel_button": N_("Cancel"),
    "cancelled": N_("Cancelled."),
    "not_yours": N_("Only the person who sent this photo can cancel it."),
    "too_late": N_("Too late to cancel: it is already being processed."),
    "forgot_none": N_("There was nothing of yours to delete."),
    # what delivery says
    "done_in": N_("Done in {seconds:.1f} s."),
    "failed_short": N_("Sorry, that didn't work — see the reply below."),
    "no_objects": N_("No objects found."),
    "no_objects_of": N_("None of the objects you chose ({classes}) were found."),
    "failed": N_("Sorry, I couldn't process that photo: {reason}"),
    "dead": N_("Sorry, that photo failed several times ({reason}). An admin has been told; you can try again later."),
    "reason_crashed": N_("the detector kept crashing on it"),
    "reason_timeout": N_("the detector took too long on it"),
    "reason_unknown": N_("something went wrong on our side"),
    # the photo itself (the gateway's error codes)
    "bad_image": N_("That image is damaged or not a photo. Please send a JPEG, PNG or WebP."),
    "image_empty": N_("That file was empty. Please send a photo (JPEG, PNG or WebP)."),
    "image_too_large": N_("That file is too large. Please send a smaller photo."),
    "image_not_an_image": N_("That file is not an image. Please send a JPEG, PNG or WebP photo."),
    "image_unsupported": N_("That kind of image is not supported. Please send a JPEG, PNG or WebP photo."),
    "image_too_many_pixels": N_("That image has too many pixels. Please send a smaller photo."),
    "image_corrupt": N_("That image is damaged or incomplete. Please send it again or try another."),
    "image_too_complex": N_(
        "That image is built to be very slow to decode. Please send an ordinary photo (JPEG, PNG or WebP)."
    ),
    "not_found": N_("I can't find that photo any more."),
    "history_empty": N_("You haven't sent me a photo here yet."),
    "history_line": N_("{number}. {age} ago — {what}"),
    "history_gone": N_("{what} (the photo is no longer kept)"),
    "history_in_line": N_("still in line"),
    "history_failed": N_("it could not be processed"),
    "history_rerun": N_("{what} (run again)"),
    "rerun_lower": N_("a lower confidence"),
    "rerun_higher": N_("a higher confidence"),
    "rerun_found": N_("only the objects it found"),
    "rerun_settings": N_("your settings as they are now"),
    "rerun_lower_button": N_("Lower"),
    "rerun_higher_button": N_("Higher"),
    "rerun_found_button": N_("Only these"),
    "rerun_settings_button": N_("My settings"),
    "rerun_button": N_("#{number} · {mode}"),
    "rerun_pick": N_("Run a photo again…"),
    "rerun_status": N_("Running your photo again with {mode}."),
    "rerun_caption": N_("Again, with {mode}: {caption}"),
    "rerun_gone": N_("That photo is no longer kept, so I can't run it again. Please send it again."),
    "rerun_not_yours": N_("Only the person who sent this photo can run it again."),
    "objects_button": N_("Objects"),
    "objects_button_n": N_("Objects {n}"),
    "objects_gone": N_("That photo is no longer kept, so I can't cut its objects out."),
    "objects_not_yours": N_("Only the person who sent this photo, or a chat admin, can ask for its objects."),
    "objects_none": N_("Every object in this photo is too small to cut out."),
    "crop_text": N_("{label} {confidence:.0%}"),
    "bad_request": N_("That request could not be used. Please try again."),
    "request_timeout": N_("That took too long to arrive. Please try again."),
    "bad_webhook_url": N_("That webhook address can't be used. Please give a public http or https address."),
    "webhooks_off": N_("This service sends no webhooks. Please follow the job's status link instead."),
    "too_many_waiting": N_("Too many requests are waiting at once. Please try again in a moment."),
    "not_ready": N_("It isn't finished yet. Please try again shortly."),
    "link_expired": N_("This link has expired."),
    "refused_key": N_("The gateway refused this bot's key. Give the bot a bot key (DETECTBOT_API_KEYS=bot:…)."),
    # admins
    "stats_header": N_("detectbot — last 24 h"),
    "stats_jobs": N_("Jobs: {received} received, {done} done ({delivered} delivered), {failed} failed, {dead} dead"),
    "stats_by_platform": N_("By platform: {platforms}"),
    "stats_in_progress": N_("In progress now: {count}"),
    "stats_latency": N_("Latency p50/p95: {stages}"),
    "stage_queue_wait": N_("queue wait"),
    "stage_processing": N_("processing"),
    "stage_end_to_end": N_("end to end"),
    "stats_queue": N_("Queue: {depth} waiting, {consumers} consumers"),
    "stats_queue_unknown": N_("Queue: broker unreachable"),
    "stats_workers": N_("Workers seen (1 min): {count}"),
    "stats_no_worker": N_("⚠️ No worker has been running for {duration}; the photos in line wait safely."),
    "workers_back": N_("Workers are back after {duration} away. The photos that waited are being processed now."),
    "stats_dead": N_("Dead, waiting in /dlq: {dead}; cache hits: {hits}"),
    "stats_top": N_("Top classes: {top}"),
    "dlq_empty": N_("No dead jobs. All good."),
    "dlq_pick": N_("No single dead job starts with that id. Run /dlq to see them."),
    "requeue_button": N_("Requeue {job}"),
    "requeued": N_("Requeued job {job}. Its chat gets the result when it is done."),
    "not_requeueable": N_("Only dead or failed jobs can be requeued."),
    # /settings
    "settings_header": N_("Settings for this chat:"),
    "settings_header_own": N_("Your settings (they apply to your photos in every chat):"),
    "settings_admins_only": N_(
        "Only this chat's admins can change its settings. Your own settings, in a private chat with me, "
        "apply to your photos everywhere."
    ),
    "settings_conf": N_("Confidence: at least {conf:.0%}"),
    "settings_conf_default": N_("Confidence: the model's own threshold"),
    "settings_classes": N_("Objects: {classes}"),
    "settings_all_classes": N_("all"),
    "settings_output": N_("Result: {output}"),
    "settings_language": N_("Language: {language}"),
    "settings_saved": N_("Saved."),
    "settings_unknown_class": N_("I don't know the object “{name}”. Try: {examples}."),
    "settings_reset": N_("Back to the defaults."),
    "settings_usage": N_(
        "Try /settings conf 60, /settings classes person, car, /settings output document or /settings reset."
    ),
    "output_photo": N_("annotated photo"),
    "output_photo+json": N_("photo + detections (JSON)"),
    "output_document": N_("original-quality file"),
    "button_conf": N_("Confidence {conf:.0%}"),
    "button_classes_all": N_("All objects"),
    "button_classes_people": N_("Only people"),
    "button_classes_vehicles": N_("Only vehicles"),
    "button_reset": N_("Reset"),
    "language_name": N_("English"),
    # commands, as the platforms list them
    "cmd_detect": N_("Find objects in a photo (reply to it in groups)"),
    "cmd_detect_discord": N_("Find the objects in a photo"),
    "cmd_detect_image": N_("A photo: JPEG, PNG or WebP"),
    "cmd_detect_menu": N_("Detect objects"),
    "cmd_help": N_("What this bot does"),
    "cmd_history": N_("My last photos here, to run one again"),
    "cmd_settings": N_("Confidence, objects, result and language for this chat"),
    "cmd_forget": N_("Delete my photos and results now"),
    "cmd_privacy": N_("What is kept about me, and for how long"),
    "cmd_stats": N_("Admins: the last 24 hours"),
    "cmd_dlq": N_("Admins: dead jobs, and requeue one"),
    "cmd_dlq_requeue": N_("The id (or its first 8 characters) of a dead job to run again"),
    "cmd_settings_conf": N_("Minimum confidence, 5 to 95 (%)"),
    "cmd_settings_classes": N_("Objects to show, comma-separated (e.g. person, car), or “all”"),
    "cmd_settings_output": N_("What to send back"),
    "cmd_settings_language": N_("Language (en, ru)"),
    # the web page (/) and the admin dashboard (/admin)
    "web_title": N_("detectbot — find objects in photos"),
    "web_heading": N_("Find the objects in your photos"),
    "web_intro": N_("Choose or drop photos (JPEG, PNG or WebP): each comes back with the objects boxed and labelled."),
    "web_choose": N_("Choose photos"),
    "web_drop": N_("or drop them here"),
    "web_drop_here": N_("Drop the photos to send them"),
    "web_conf_label": N_("Confidence: at least {conf}%"),
    "web_conf_hint": N_("Only objects found with at least this confidence are shown."),
    "web_key_label": N_("API key"),
    "web_key_prompt": N_("This page needs an API key to send photos. Ask the person who runs it for one."),
    "web_key_save": N_("Use this key"),
    "web_key_change": N_("Change the key"),
    "web_key_missing": N_("Enter an API key to send photos."),
    "web_key_saved": N_("Key saved in this browser."),
    "web_key_invalid": N_("That API key is not valid here. Please check it and enter it again."),
    "web_forbidden": N_("This key may not do that."),
    "web_link_expired": N_("This link has expired."),
    "web_bad_request": N_("The service did not understand that request. Please reload the page."),
    "web_gone": N_("This photo and its result were deleted."),
    "web_uploading": N_("Sending…"),
    "web_waiting_turn": N_("Waiting for your earlier photos to finish…"),
    "web_retry_in": N_("Trying again in {seconds} s…"),
    "web_offline": N_("Can't reach the service. Check your connection; I'll keep trying."),
    "web_session_failed": N_("Couldn't start a session with the service. I'll keep trying."),
    "web_error_photo": N_("{name}: {reason}"),
    "web_retry": N_("Try again"),
    "web_remove": N_("Remove"),
    "web_cancel": N_("Cancel"),
    "web_rerun": N_("Run again:"),
    "web_rerun_lower": N_("Lower confidence"),
    "web_rerun_higher": N_("Higher confidence"),
    "web_rerun_found": N_("Only these objects"),
    "web_rerun_name": N_("{name} (again)"),
    "web_download_image": N_("Download the image"),
    "web_download_json": N_("Download the detections (JSON)"),
    "web_download_objects": N_("Download the objects (ZIP)"),
    "web_detections": N_("Detections"),
    "web_col_object": N_("Object"),
    "web_col_confidence": N_("Confidence"),
    "web_col_box": N_("Box (x1, y1, x2, y2)"),
    "web_history": N_("Your photos in this session"),
    "web_history_empty": N_("The photos you send appear here until you close the page."),
    "web_clear": N_("Clear the list"),
    "web_annotated_alt": N_("{name} with the objects found boxed and labelled: {caption}"),
    "web_preview_alt": N_("{name}, as sent"),
    "web_photo_state": N_("State of {name}"),
    "web_footer": N_("Photos and results are deleted automatically after a while."),
    "web_admin_link": N_("Admin"),
    "web_home_link": N_("Send photos"),
    "web_admin_title": N_("detectbot — admin"),
    "web_admin_heading": N_("The last 24 hours"),
    "web_admin_key_prompt": N_("Enter an admin key to see the dashboard."),
    "web_admin_key_label": N_("Admin key"),
    "web_admin_key_invalid": N_("That key may not see the dashboard. Please use an admin key."),
    "web_admin_forget_key": N_("Forget the key"),
    "web_admin_refresh": N_("Refresh"),
    "web_admin_updated": N_("Updated at {time}."),
    "web_admin_summary": N_("Summary"),
    "web_admin_jobs": N_("Jobs"),
    "web_admin_count_received": N_("received"),
    "web_admin_count_done": N_("done"),
    "web_admin_count_delivered": N_("delivered"),
    "web_admin_count_failed": N_("failed"),
    "web_admin_count_dead": N_("dead"),
    "web_admin_count_waiting": N_("in progress now"),
    "web_admin_count_cache": N_("cache hits"),
    "web_admin_per_hour": N_("Jobs per hour and p95 end-to-end latency"),
    "web_admin_per_hour_alt": N_("Bar chart: jobs received in each of the last 24 hours; line: p95 latency."),
    "web_admin_latency": N_("Latency per stage, p50 and p95 (seconds)"),
    "web_admin_queue": N_("Queue and workers"),
    "web_admin_workers_none": N_("No worker seen in the last minute."),
    "web_admin_col_worker": N_("Worker"),
    "web_admin_col_model": N_("Model"),
    "web_admin_col_seen": N_("Last seen"),
    "web_admin_top": N_("Top classes"),
    "web_admin_top_none": N_("No objects found yet."),
    "web_admin_dead": N_("Dead jobs"),
    "web_admin_col_job": N_("Job"),
    "web_admin_col_platform": N_("Platform"),
    "web_admin_col_reason": N_("Reason"),
    "web_admin_col_attempts": N_("Attempts"),
    "web_admin_col_dead_at": N_("Dead since"),
    "web_admin_requeued": N_("Requeued job {job}."),
    "web_admin_requeue": N_("Requeue {job}"),
    "web_unavailable": N_("The service is briefly unavailable. I'll keep trying."),
    "web_admin_as_text": N_("As the bots' /stats shows it"),
    "web_admin_webhooks": N_("Failing webhooks"),
    "web_admin_webhooks_none": N_("No webhook is failing."),
    "web_admin_webhooks_pending": N_("Waiting to be sent: {count}"),
    "web_admin_col_receiver": N_("Receiver"),
    "web_admin_col_state": N_("State"),
    "web_admin_col_last": N_("Last answer"),
    "web_admin_col_next": N_("Next try"),
}

PLURALS: dict[str, tuple[str, str]] = {
    "queued_album": NN_(
        "Queued {count} photo — #{position} in line, about {eta}.",
        "Queued {count} photos — #{position} in line, about {eta}.",
    ),
    "too_many_in_line": NN_(
        "You already have {count} photo in line. Please wait for it first.",
        "You already have {count} photos in line. Please wait for them first.",
    ),
    "quota": NN_(
        "That is today's limit of {count} photo. Please come back tomorrow.",
        "That is today's limit of {count} photos. Please come back tomorrow.",
    ),
    "forgot": NN_(
        "Deleted {count} photo of yours and its result.", "Deleted {count} photos of yours and their results."
    ),
    "privacy_history": NN_(
        "What was found in your photos (not the photos) stays in /history for {count} day; then only counts "
        "without names stay for the statistics.",
        "What was found in your photos (not the photos) stays in /history for {count} days; then only counts "
        "without names stay for the statistics.",
    ),
    "history_header": NN_(
        "Your last {count} photo here, newest first:", "Your last {count} photos here, newest first:"
    ),
    "age_minutes": NN_("{count} min", "{count} min"),
    "age_hours": NN_("{count} h", "{count} h"),
    "age_days": NN_("{count} day", "{count} days"),
    "objects_caption": NN_("{count} object, largest first.", "{count} objects, largest first."),
    "objects_too_small": NN_("{count} more was too small to show.", "{count} more were too small to show."),
    "objects_more": NN_("{count} smaller one is not shown.", "{count} smaller ones are not shown."),
    "alert_no_worker": NN_(
        "No worker has been running for {duration}. {count} photo is waiting; it is safe and will be done as soon "
        "as a worker starts.",
        "No worker has been running for {duration}. {count} photos are waiting; they are safe and will be done as "
        "soon as a worker starts.",
    ),
    "dlq_header": NN_("{count} dead job, newest first:", "{count} dead jobs, newest first:"),
    "privacy": NN_(
        "What I keep: each photo you send and its result, for {count} day, with the chat and message they belong "
        "to; then the photos are deleted. Your own /settings stay until you change them. /forget deletes all of it "
        "now.",
        "What I keep: each photo you send and its result, for {count} days, with the chat and message they belong "
        "to; then the photos are deleted. Your own /settings stay until you change them. /forget deletes all of it "
        "now.",
    ),
    "eta_seconds": NN_("{count} s", "{count} s"),
    "eta_minutes": NN_("{count} min", "{count} min"),
}

# The object classes of the COCO models: ultralytics' names and the Darknet ones (offline-coco) where they differ.
OBJECTS: dict[str, tuple[str, str, str]] = {
    "person": CN_("count", "{count} person", "{count} persons"),
    "bicycle": CN_("count", "{count} bicycle", "{count} bicycles"),
    "car": CN_("count", "{count} car", "{count} cars"),
    "motorcycle": CN_("count", "{count} motorcycle", "{count} motorcycles"),
    "motorbike": CN_("count", "{count} motorbike", "{count} motorbikes"),
    "airplane": CN_("count", "{count} airplane", "{count} airplanes"),
    "aeroplane": CN_("count", "{count} aeroplane", "{count} aeroplanes"),
    "bus": CN_("count", "{count} bus", "{count} buses"),
    "train": CN_("count", "{count} train", "{count} trains"),
    "truck": CN_("count", "{count} truck", "{count} trucks"),
    "boat": CN_("count", "{count} boat", "{count} boats"),
    "traffic light": CN_("count", "{count} traffic light", "{count} traffic lights"),
    "fire hydrant": CN_("count", "{count} fire hydrant", "{count} fire hydrants"),
    "stop sign": CN_("count", "{count} stop sign", "{count} stop signs"),
    "parking meter": CN_("count", "{count} parking meter", "{count} parking meters"),
    "bench": CN_("count", "{count} bench", "{count} benches"),
    "bird": CN_("count", "{count} bird", "{count} birds"),
    "cat": CN_("count", "{count} cat", "{count} cats"),
    "dog": CN_("count", "{count} dog", "{count} dogs"),
    "horse": CN_("count", "{count} horse", "{count} horses"),
    "sheep": CN_("count", "{count} sheep", "{count} sheep"),
    "cow": CN_("count", "{count} cow", "{count} cows"),
    "elephant": CN_("count", "{count} elephant", "{count} elephants"),
    "bear": CN_("count", "{count} bear", "{count} bears"),
    "zebra": CN_("count", "{count} zebra", "{count} zebras"),
    "giraffe": CN_("count", "{count} giraffe", "{count} giraffes"),
    "backpack": CN_("count", "{count} backpack", "{count} backpacks"),
    "umbrella": CN_("count", "{count} umbrella", "{count} umbrellas"),
    "handbag": CN_("count", "{count} handbag", "{count} handbags"),
    "tie": CN_("count", "{count} tie", "{count} ties"),
    "suitcase": CN_("count", "{count} suitcase", "{count} suitcases"),
    "frisbee": CN_("count", "{count} frisbee", "{count} frisbees"),
    "skis": CN_("count", "{count} pair of skis", "{count} pairs of skis"),
    "snowboard": CN_("count", "{count} snowboard", "{count} snowboards"),
    "sports ball": CN_("count", "{count} sports ball", "{count} sports balls"),
    "kite": CN_("count", "{count} kite", "{count} kites"),
    "baseball bat": CN_("count", "{count} baseball bat", "{count} baseball bats"),
    "baseball glove": CN_("count", "{count} baseball glove", "{count} baseball gloves"),
    "skateboard": CN_("count", "{count} skateboard", "{count} skateboards"),
    "surfboard": CN_("count", "{count} surfboard", "{count} surfboards"),
    "tennis racket": CN_("count", "{count} tennis racket", "{count} tennis rackets"),
    "bottle": CN_("count", "{count} bottle", "{count} bottles"),
    "wine glass": CN_("count", "{count} wine glass", "{count} wine glasses"),
    "cup": CN_("count", "{count} cup", "{count} cups"),
    "fork": CN_("count", "{count} fork", "{count} forks"),
    "knife": CN_("count", "{count} knife", "{count} knives"),
    "spoon": CN_("count", "{count} spoon", "{count} spoons"),
    "bowl": CN_("count", "{count} bowl", "{count} bowls"),
    "banana": CN_("count", "{count} banana", "{count} bananas"),
    "apple": CN_("count", "{count} apple", "{count} apples"),
    "sandwich": CN_("count", "{count} sandwich", "{count} sandwiches"),
    "orange": CN_("count", "{count} orange", "{count} oranges"),
    "broccoli": CN_("count", "{count} broccoli", "{count} broccoli"),
    "carrot": CN_("count", "{count} carrot", "{count} carrots"),
    "hot dog": CN_("count", "{count} hot dog", "{count} hot dogs"),
    "pizza": CN_("count", "{count} pizza", "{count} pizzas"),
    "donut": CN_("count", "{count} donut", "{count} donuts"),
    "cake": CN_("count", "{count} cake", "{count} cakes"),
    "chair": CN_("count", "{count} chair", "{count} chairs"),
    "couch": CN_("count", "{count} couch", "{count} couches"),
    "sofa": CN_("count", "{count} sofa", "{count} sofas"),
    "potted plant": CN_("count", "{count} potted plant", "{count} potted plants"),
    "pottedplant": CN_("count", "{count} potted plant", "{count} potted plants"),
    "bed": CN_("count", "{count} bed", "{count} beds"),
    "dining table": CN_("count", "{count} dining table", "{count} dining tables"),
    "diningtable": CN_("count", "{count} dining table", "{count} dining tables"),
    "toilet": CN_("count", "{count} toilet", "{count} toilets"),
    "tv": CN_("count", "{count} TV", "{count} TVs"),
    "tvmonitor": CN_("count", "{count} TV", "{count} TVs"),
    "laptop": CN_("count", "{count} laptop", "{count} laptops"),
    "mouse": CN_("count", "{count} mouse", "{count} mice"),
    "remote": CN_("count", "{count} remote", "{count} remotes"),
    "keyboard": CN_("count", "{count} keyboard", "{count} keyboards"),
    "cell phone": CN_("count", "{count} cell phone", "{count} cell phones"),
    "microwave": CN_("count", "{count} microwave", "{count} microwaves"),
    "oven": CN_("count", "{count} oven", "{count} ovens"),
    "toaster": CN_("count", "{count} toaster", "{count} toasters"),
    "sink": CN_("count", "{count} sink", "{count} sinks"),
    "refrigerator": CN_("count", "{count} refrigerator", "{count} refrigerators"),
    "book": CN_("count", "{count} book", "{count} books"),
    "clock": CN_("count", "{count} clock", "{count} clocks"),
    "vase": CN_("count", "{count} vase", "{count} vases"),
    "scissors": CN_("count", "{count} pair of scissors", "{count} pairs of scissors"),
    "teddy bear": CN_("count", "{count} teddy bear", "{count} teddy bears"),
    "hair drier": CN_("count", "{count} hair drier", "{count} hair driers"),
    "toothbrush": CN_("count", "{count} toothbrush", "{count} toothbrushes"),
}

# A label as drawn on the image: the class name itself in English, a translation in other languages.
# Spelled out, one literal per class, so that pybabel extracts them (the same keys as OBJECTS; a test checks).
LABELS: dict[str, tuple[str, str]] = {
    "person": C_("object", "person"),
    "bicycle": C_("object", "bicycle"),
    "car": C_("object", "car"),
    "motorcycle": C_("object", "motorcycle"),
    "motorbike": C_("object", "motorbike"),
    "airplane": C_("object", "airplane"),
    "aeroplane": C_("object", "aeroplane"),
    "bus": C_("object", "bus"),
    "train": C_("object", "train"),
    "truck": C_("object", "truck"),
    "boat": C_("object", "boat"),
    "traffic light": C_("object", "traffic light"),
    "fire hydrant": C_("object", "fire hydrant"),
    "stop sign": C_("object", "stop sign"),
    "parking meter": C_("object", "parking meter"),
    "bench": C_("object", "bench"),
    "bird": C_("object", "bird"),
    "cat": C_("object", "cat"),
    "dog": C_("object", "dog"),
    "horse": C_("object", "horse"),
    "sheep": C_("object", "sheep"),
    "cow": C_("object", "cow"),
    "elephant": C_("object", "elephant"),
    "bear": C_("object", "bear"),
    "zebra": C_("object", "zebra"),
    "giraffe": C_("object", "giraffe"),
    "backpack": C_("object", "backpack"),
    "umbrella": C_("object", "umbrella"),
    "handbag": C_("object", "handbag"),
    "tie": C_("object", "tie"),
    "suitcase": C_("object", "suitcase"),
    "frisbee": C_("object", "frisbee"),
    "skis": C_("object", "skis"),
    "snowboard": C_("object", "snowboard"),
    "sports ball": C_("object", "sports ball"),
    "kite": C_("object", "kite"),
    "baseball bat": C_("object", "baseball bat"),
    "baseball glove": C_("object", "baseball glove"),
    "skateboard": C_("object", "skateboard"),
    "surfboard": C_("object", "surfboard"),
    "tennis racket": C_("object", "tennis racket"),
    "bottle": C_("object", "bottle"),
    "wine glass": C_("object", "wine glass"),
    "cup": C_("object", "cup"),
    "fork": C_("object", "fork"),
    "knife": C_("object", "knife"),
    "spoon": C_("object", "spoon"),
    "bowl": C_("object", "bowl"),
    "banana": C_("object", "banana"),
    "apple": C_("object", "apple"),
    "sandwich": C_("object", "sandwich"),
    "orange": C_("object", "orange"),
    "broccoli": C_("object", "broccoli"),
    "carrot": C_("object", "carrot"),
    "hot dog": C_("object", "hot dog"),
    "pizza": C_("object", "pizza"),
    "donut": C_("object", "donut"),
    "cake": C_("object", "cake"),
    "chair": C_("object", "chair"),
    "couch": C_("object", "couch"),
    "sofa": C_("object", "sofa"),
    "potted plant": C_("object", "potted plant"),
    "pottedplant": C_("object", "pottedplant"),
    "bed": C_("object", "bed"),
    "dining table": C_("object", "dining table"),
    "diningtable": C_("object", "diningtable"),
    "toilet": C_("object", "toilet"),
    "tv": C_("object", "tv"),
    "tvmonitor": C_("object", "tvmonitor"),
    "laptop": C_("object", "laptop"),
    "mouse": C_("object", "mouse"),
    "remote": C_("object", "remote"),
    "keyboard": C_("object", "keyboard"),
    "cell phone": C_("object", "cell phone"),
    "microwave": C_("object", "microwave"),
    "oven": C_("object", "oven"),
    "toaster": C_("object", "toaster"),
    "sink": C_("object", "sink"),
    "refrigerator": C_("object", "refrigerator"),
    "book": C_("object", "book"),
    "clock": C_("object", "clock"),
    "vase": C_("object", "vase"),
    "scissors": C_("object", "scissors"),
    "teddy bear": C_("object", "teddy bear"),
    "hair drier": C_("object", "hair drier"),
    "toothbrush": C_("object", "toothbrush"),
}

# the groups /settings offers as buttons
PEOPLE = ("person",)
VEHICLES = ("bicycle", "car", "motorcycle", "motorbike", "bus", "train", "truck", "boat", "airplane", "aeroplane")

_ERROR_MESSAGES = {
    "empty": "image_empty",
    "too_large": "image_too_large",
    "not_an_image": "image_not_an_image",
    "unsupported_format": "image_unsupported",
    "too_many_pixels": "image_too_many_pixels",
    "corrupt": "image_corrupt",
    "too_complex": "image_too_complex",
    "bad_image": "bad_image",
    "not_found": "not_found",
    "gone": "not_found",
    "too_late": "too_late",
    "not_dead": "not_requeueable",
    "unauthorized": "refused_key",
    "forbidden": "refused_key",
    "expired": "link_expired",
    "not_yours": "not_yours",
    "rate_limited": "rate_limited",
    "too_many_waiting": "too_many_waiting",
    "request_timeout": "request_timeout",
    "not_ready": "not_ready",
    "bad_webhook_url": "bad_webhook_url",
    "webhooks_off": "webhooks_off",
    **dict.fromkeys(
        ("bad_request", "bad_body", "bad_chat", "bad_idempotency_key", "bad_limit", "bad_multipart", "bad_origin",
         "bad_params", "bad_wait", "bad_meta", "multipart_required", "no_image", "no_meta", "unstorable",
         "method_not_allowed"),
        "bad_request",
    ),
}  # fmt: skip


def language(code: str | None) -> str:
    """``"ru-RU"`` → ``"ru"`` when there is a catalogue for it, else English."""
    short = (code or DEFAULT_LANGUAGE).split("-")[0].split("_")[0].lower()
    return short if short in languages() else DEFAULT_LANGUAGE


@lru_cache(maxsize=1)
def languages() -> tuple[str, ...]:
    """English, and every language with a compiled catalogue."""
    found = sorted(p.parent.parent.name for p in LOCALES.glob(f"*/LC_MESSAGES/{DOMAIN}.mo"))
    return (DEFAULT_LANGUAGE, *[lang for lang in found if lang != DEFAULT_LANGUAGE])


@lru_cache(maxsize=32)
def translation(lang: str | None) -> gettext.NullTranslations:
    return gettext.translation(DOMAIN, LOCALES, languages=[language(lang)], fallback=True)


def text(key: str, lang: str | None = None, **values: Any) -> str:
    """The message ``key`` in ``lang`` (English when there is no translation), formatted with ``values``."""
    return translation(lang).gettext(MESSAGES[key]).format(**values)


def ntext(key: str, count: int, lang: str | None = None, **values: Any) -> str:
    """A message with plural forms, in the form ``lang`` uses for ``count``."""
    singular, plural = PLURALS[key]
    return translation(lang).ngettext(singular, plural, count).format(count=count, **values)


def label(name: str, lang: str | None = None) -> str:
    """A class name as drawn on the image, in the person's language (unknown classes as the model names them)."""
    if name not in LABELS:
        return name
    context, message = LABELS[name]
    return translation(lang).pgettext(context, message)


def object_named(word: str, lang: str | None = None) -> str | None:
    """The class a person means by ``word``: its English name, or its label in their language; else None."""
    wanted = word.strip().casefold()
    for name in LABELS:
        if wanted in (name.casefold(), label(name, lang).casefold()):
            return name
    return None


def count_of(name: str, count: int, lang: str | None = None) -> str:
    """``"4 persons"``, ``"4 человека"``: a count of one class in the person's language."""
    if name in OBJECTS:
        context, singular, plural = OBJECTS[name]
        return translation(lang).npgettext(context, singular, plural, count).format(count=count)
    return f"{count} {name if count == 1 else _english_plural(name)}"


def caption(detections: Iterable[Mapping[str, Any]], lang: str | None = None) -> str:
    """``"4 persons, 1 bus"`` — most frequent first; a sentence when nothing was found."""
    counts = Counter(str(d["label"]) for d in detections)
    if not counts:
        return text("no_objects", lang)
    ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return ", ".join(count_of(name, n, lang) for name, n in ordered)


def eta(seconds: float, lang: str | None = None) -> str:
    """``"3 s"``, ``"2 min"``: how long a photo will wait, rounded up."""
    if seconds < 90:
        return ntext("eta_seconds", max(1, math.ceil(seconds)), lang)
    return ntext("eta_minutes", math.ceil(seconds / 60), lang)


def queued_text(position: int, eta_s: float, lang: str | None = None, *, count: int = 1) -> str:
    """``"Queued — #3 in line, about 4 s."`` (or the album's form)."""
    wait = eta(eta_s, lang)
    if count > 1:
        return ntext("queued_album", count, lang, position=position, eta=wait)
    return text("queued", lang, position=position, eta=wait)


def for_error(code: str, lang: str | None = None, *, retry_after: int | None = None, limit: int | None = None) -> str:
    """The person's sentence for one of the gateway's error codes (``ErrorCode``)."""
    if code == "busy":
        return text("busy", lang, seconds=retry_after or 30)
    if code == "too_many_in_line":
        return ntext("too_many_in_line", limit or 3, lang)
    if code == "quota":
        return ntext("quota", limit or 0, lang)
    return text(_ERROR_MESSAGES.get(code, "unavailable"), lang)


def _english_plural(name: str) -> str:
    if name.endswith(("s", "x", "ch", "sh")):
        return name + "es"
    return name + "s"
