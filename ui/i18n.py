"""Every string the UI shows, in German (default, formal "Sie") and English.

Strings are Markdown written by us; anything from documents, file names or the model is inserted through
:func:`ui.escaping.escape_markdown` or the sanitiser, never formatted in raw.
"""

from __future__ import annotations

from typing import Literal

UILanguage = Literal["de", "en"]
LANGUAGES: tuple[UILanguage, ...] = ("de", "en")
LANGUAGE_NAMES: dict[UILanguage, str] = {"de": "Deutsch", "en": "English"}

TEXTS: dict[UILanguage, dict[str, str]] = {
    "de": {
        "page_title": "Hauswissen",
        "title": "Hauswissen",
        "tagline": "Fragen Sie Ihre Unternehmensdokumente. Jede Antwort nennt ihre Quellen; "
        "alles läuft auf Ihren eigenen Servern.",
        "language_label": "Sprache / Language",
        "chat_placeholder": "Ihre Frage an die Dokumente …",
        "welcome": "Stellen Sie eine Frage zu Ihren Dokumenten, zum Beispiel: "
        "„Wie viele Urlaubstage stehen mir zu?“",
        "new_chat": "Neuer Chat",
        "first_run_title": "So hilft Ihnen Hauswissen",
        "first_run_can": "**Was es kann:** Fragen auf Deutsch oder Englisch aus Ihren Dokumenten beantworten. "
        "Jede Aussage nennt ihre Quelle mit Seite und zitierter Stelle, die Sie mit einem Klick prüfen können. "
        "Steht die Antwort nicht in den Dokumenten, sagt es das und zeigt die nächstliegenden Quellen. "
        "Folgefragen verstehen sich im Zusammenhang des Chats.",
        "first_run_cannot": "**Was es nicht kann:** Wissen außerhalb dieser Dokumente, das Internet, "
        "Aktionen in anderen Systemen. Antworten können Fehler enthalten: Aussagen ohne belegtes Zitat werden "
        "markiert – bitte prüfen Sie sie. Ihre Fragen und Dokumente verlassen diesen Server nicht.",
        "first_run_documents": "**Bekannte Dokumente ({count}):** {documents}",
        "history_not_saved": "Dieser Chat konnte nicht gespeichert werden; nach dem Neuladen der Seite fehlt "
        "dieser Teil.",
        "searched_for": "Gesucht wurde nach: „{query}“",
        "rewritten_label": "Als eigenständige Frage gesucht",
        "feedback_comment": "Kommentar (optional)",
        "feedback_comment_placeholder": "Was war gut oder falsch?",
        "feedback_not_saved": "Ihre Rückmeldung konnte nicht gespeichert werden.",
        "feedback_too_long": "Der Kommentar ist zu lang ({length} Zeichen, höchstens {limit}).",
        "feedback_invalid": "Diese Rückmeldung kann nicht gespeichert werden.",
        "searching": "Durchsuche die Dokumente …",
        "starting": "Hauswissen wird gestartet …",
        "status_header": "Wissensbasis",
        "status_documents": "Dokumente",
        "status_chunks": "Abschnitte",
        "status_updated": "Stand: {when} (Version {generation})",
        "status_never": "Noch nichts indexiert.",
        "documents_list": "Dokumente ({count})",
        "documents_more": "… und {count} weitere",
        "refresh": "Aktualisieren",
        "upload_header": "Dokumente hinzufügen",
        "upload_label": "Dateien auswählen",
        "upload_help": "Erlaubt: {types}. Höchstens {mb} MB je Datei. Die Dateien werden im Hintergrund "
        "verarbeitet und sind danach für alle Nutzer durchsuchbar.",
        "upload_submit": "Zur Wissensbasis hinzufügen",
        "upload_none": "Bitte wählen Sie zuerst mindestens eine Datei aus.",
        "upload_queued": "„{name}“ wurde angenommen und wird verarbeitet.",
        "upload_rejected": "„{name}“ wurde abgelehnt: {reason}",
        "jobs_header": "Ihre Uploads",
        "job_queued": "wartet",
        "job_parsing": "wird gelesen",
        "job_embedding": "wird indexiert",
        "job_committed": "bereit",
        "job_skipped": "unverändert, bereits vorhanden",
        "job_failed": "fehlgeschlagen",
        "job_unknown": "unbekannt",
        "job_reason": "Grund: {reason}",
        "queue_header": "Verarbeitung",
        "file_queued": "wartend",
        "file_parsing": "wird gelesen",
        "file_embedding": "wird indexiert",
        "file_committed": "indexiert",
        "file_failed": "fehlgeschlagen",
        "file_quarantined": "in Quarantäne",
        "queue_now_parsing": "Wird gerade gelesen: {name}",
        "queue_now_embedding": "Wird gerade indexiert: {name}",
        "queue_pages_done": "({pages} Seiten fertig)",
        "queue_page_done": "({pages} Seite fertig)",
        "queue_eta": "Noch {count} Dateien, fertig in etwa {minutes} Min.",
        "queue_eta_soon": "Noch {count} Dateien, fertig in weniger als einer Minute.",
        "queue_eta_unknown": "Noch {count} Dateien; die Restzeit wird noch geschätzt.",
        "queue_problems": "Nicht verarbeitete Dateien ({count})",
        "queue_problem": "„{name}“ – {state}. Grund: {reason}",
        "queue_no_reason": "kein Grund vermerkt",
        "queue_hidden": "{count} weitere Dateien, für die Sie keine Berechtigung haben.",
        "queue_error": "Der Verarbeitungsstand kann gerade nicht gelesen werden. Der Fehler wurde für die "
        "Administration protokolliert.",
        "empty_title": "Noch keine Dokumente",
        "empty_body": "Die Wissensbasis ist noch leer. Laden Sie links unter **Dokumente hinzufügen** "
        "Dateien hoch (PDF, Word, PowerPoint, Excel, E-Mail, Text, HTML) oder bitten Sie Ihre "
        "Administration, einen Ordner einzubinden (`hauswissen ingest`). Sobald die Verarbeitung "
        "abgeschlossen ist, können Sie hier Fragen stellen.",
        "sources_label": "Quellen: {cited} von {total} zitiert",
        "closest_label": "Nächstliegende Fundstellen ({total})",
        "no_sources": "Keine passenden Fundstellen in den Dokumenten, die Sie sehen dürfen.",
        "cited": "zitiert",
        "abstained": "Die Dokumente enthalten dazu keine belegte Antwort.",
        "unverified_claims": "Nicht durch die zitierten Quellen belegt (bitte selbst prüfen):",
        "draft_withdrawn": "Zurückgezogener Entwurf des Modells (nicht in den Quellen belegt)",
        "draft_withdrawn_why": "Was dieser Entwurf der Frage hinzufügt, steht in keiner der gefundenen Quellen. "
        "Er wird deshalb nicht als Antwort gezeigt.",
        "citation_fixed": "Quellenangabe berichtigt: „{sentence}“ nannte {cited}, belegt ist es in {sources}.",
        "original_open": "Original öffnen",
        "original_download": "Original herunterladen ({name})",
        "original_page_caption": "Seite {page} des Originals",
        "original_changed": "Das Dokument wurde seit der Indexierung geändert; die zitierte Stelle kann im "
        "Original anders aussehen oder fehlen.",
        "original_unavailable": "Das Original kann nicht geöffnet werden: {reason}",
        "err_original_not_indexed": "das Dokument ist nicht mehr in der Wissensbasis",
        "err_original_denied": "Sie haben keine Berechtigung für dieses Dokument",
        "err_original_outside": "die Datei liegt nicht in den freigegebenen Dokumentordnern",
        "err_original_missing": "die Datei existiert nicht mehr",
        "err_original_unreadable": "die Datei kann nicht gelesen werden",
        "err_original_too_large": "die Datei ist zu groß zum Öffnen ({size} MB, höchstens {limit} MB)",
        "err_original_page_missing": "die Datei hat keine Seite {page} (mehr)",
        "question_empty": "Bitte geben Sie eine Frage ein.",
        "question_too_long": "Ihre Frage ist zu lang ({length} Zeichen). Bitte fassen Sie sie kürzer "
        "(höchstens {limit} Zeichen).",
        "user_error": "Das hat nicht geklappt: {reason}",
        "err_upload_type": "Dateityp {ext} wird nicht unterstützt",
        "err_upload_empty": "die Datei ist leer",
        "err_upload_too_large": "die Datei ist zu groß ({size} MB, höchstens {limit} MB)",
        "err_upload_mislabelled": "der Inhalt passt nicht zur Endung {ext}",
        "err_busy": "es warten bereits {waiting} Fragen auf das Sprachmodell. Bitte versuchen Sie es in "
        "einer Minute erneut.",
        "err_busy_timeout": "Ihre Frage hat {waited_s} Sekunden gewartet und war noch nicht an der Reihe "
        "(zuletzt Nummer {place}). Bitte versuchen Sie es später erneut.",
        "queue_waiting": "Viele Anfragen gleichzeitig – Sie sind Nummer {place} in der Warteschlange.",
        "backend_error": "Das Sprachmodell ist gerade nicht erreichbar oder ausgelastet. Bitte versuchen "
        "Sie es in einem Moment erneut; hält das an, wenden Sie sich an Ihre Administration.",
        "unexpected_error": "Es ist ein unerwarteter Fehler aufgetreten. Bitte versuchen Sie es erneut; "
        "der Fehler wurde für die Administration protokolliert.",
        "setup_error": "Hauswissen ist nicht vollständig eingerichtet: {reason}",
        "index_error": "Die Wissensbasis kann gerade nicht gelesen werden. Der Fehler wurde für die "
        "Administration protokolliert.",
    },
    "en": {
        "page_title": "Hauswissen",
        "title": "Hauswissen",
        "tagline": "Ask your company's documents. Every answer names its sources; everything runs on "
        "your own servers.",
        "language_label": "Sprache / Language",
        "chat_placeholder": "Your question about the documents …",
        "welcome": "Ask a question about your documents, for example: "
        "“How many days of holiday am I entitled to?”",
        "new_chat": "New chat",
        "first_run_title": "How Hauswissen helps you",
        "first_run_can": "**What it can do:** answer questions in German or English from your documents. "
        "Every statement names its source with the page and the quoted passage, which you can check in one "
        "click. When the answer is not in the documents, it says so and shows the closest sources. Follow-up "
        "questions are understood in the context of the chat.",
        "first_run_cannot": "**What it cannot do:** know anything outside these documents, use the internet, "
        "or act in other systems. Answers can contain mistakes: statements without a verified quote are "
        "marked, so please check them. Your questions and documents never leave this server.",
        "first_run_documents": "**Documents it knows ({count}):** {documents}",
        "history_not_saved": "This chat could not be saved; after reloading the page this part will be "
        "missing.",
        "searched_for": "Searched for: “{query}”",
        "rewritten_label": "Searched as a standalone question",
        "feedback_comment": "Comment (optional)",
        "feedback_comment_placeholder": "What was good or wrong?",
        "feedback_not_saved": "Your feedback could not be saved.",
        "feedback_too_long": "The comment is too long ({length} characters, at most {limit}).",
        "feedback_invalid": "This feedback cannot be saved.",
        "searching": "Searching the documents …",
        "starting": "Starting Hauswissen …",
        "status_header": "Knowledge base",
        "status_documents": "Documents",
        "status_chunks": "Passages",
        "status_updated": "Updated: {when} (version {generation})",
        "status_never": "Nothing indexed yet.",
        "documents_list": "Documents ({count})",
        "documents_more": "… and {count} more",
        "refresh": "Refresh",
        "upload_header": "Add documents",
        "upload_label": "Choose files",
        "upload_help": "Allowed: {types}. At most {mb} MB per file. Files are processed in the "
        "background and then become searchable for all users.",
        "upload_submit": "Add to knowledge base",
        "upload_none": "Please choose at least one file first.",
        "upload_queued": "“{name}” was accepted and is being processed.",
        "upload_rejected": "“{name}” was refused: {reason}",
        "jobs_header": "Your uploads",
        "job_queued": "waiting",
        "job_parsing": "reading",
        "job_embedding": "indexing",
        "job_committed": "ready",
        "job_skipped": "unchanged, already present",
        "job_failed": "failed",
        "job_unknown": "unknown",
        "job_reason": "Reason: {reason}",
        "queue_header": "Processing",
        "file_queued": "waiting",
        "file_parsing": "reading",
        "file_embedding": "indexing",
        "file_committed": "indexed",
        "file_failed": "failed",
        "file_quarantined": "quarantined",
        "queue_now_parsing": "Reading now: {name}",
        "queue_now_embedding": "Indexing now: {name}",
        "queue_pages_done": "({pages} pages done)",
        "queue_page_done": "({pages} page done)",
        "queue_eta": "{count} files to go, done in about {minutes} min.",
        "queue_eta_soon": "{count} files to go, done in less than a minute.",
        "queue_eta_unknown": "{count} files to go; estimating the time left.",
        "queue_problems": "Files not processed ({count})",
        "queue_problem": "“{name}” – {state}. Reason: {reason}",
        "queue_no_reason": "no reason recorded",
        "queue_hidden": "{count} more files you have no access to.",
        "queue_error": "The processing status cannot be read right now. The error was logged for your "
        "administrator.",
        "empty_title": "No documents yet",
        "empty_body": "The knowledge base is still empty. Upload files under **Add documents** on the "
        "left (PDF, Word, PowerPoint, Excel, e-mail, text, HTML) or ask your administrator to add a "
        "folder (`hauswissen ingest`). As soon as processing has finished you can ask questions here.",
        "sources_label": "Sources: {cited} of {total} cited",
        "closest_label": "Closest passages ({total})",
        "no_sources": "No matching passages in the documents you may see.",
        "cited": "cited",
        "abstained": "The documents contain no supported answer to this.",
        "unverified_claims": "Not supported by the cited sources (please check yourself):",
        "draft_withdrawn": "The model's withdrawn draft (not supported by the sources)",
        "draft_withdrawn_why": "What this draft adds to the question is in none of the sources found, "
        "so it is not shown as an answer.",
        "citation_fixed": "Citation corrected: \"{sentence}\" named {cited}; it is supported by {sources}.",
        "original_open": "Open original",
        "original_download": "Download original ({name})",
        "original_page_caption": "Page {page} of the original",
        "original_changed": "The document has changed since it was indexed; the cited passage may look "
        "different in the original or be missing.",
        "original_unavailable": "The original cannot be opened: {reason}",
        "err_original_not_indexed": "the document is no longer in the knowledge base",
        "err_original_denied": "you have no access to this document",
        "err_original_outside": "the file is not inside the shared document folders",
        "err_original_missing": "the file no longer exists",
        "err_original_unreadable": "the file cannot be read",
        "err_original_too_large": "the file is too large to open ({size} MB, at most {limit} MB)",
        "err_original_page_missing": "the file has no page {page} (any more)",
        "question_empty": "Please enter a question.",
        "question_too_long": "Your question is too long ({length} characters). Please shorten it "
        "(at most {limit} characters).",
        "user_error": "That did not work: {reason}",
        "err_upload_type": "file type {ext} is not supported",
        "err_upload_empty": "the file is empty",
        "err_upload_too_large": "the file is too large ({size} MB, at most {limit} MB)",
        "err_upload_mislabelled": "the content does not match the extension {ext}",
        "err_busy": "{waiting} questions are already waiting for the language model. Please try again "
        "in a minute.",
        "err_busy_timeout": "your question waited {waited_s} seconds without its turn (last number "
        "{place} in line). Please try again later.",
        "queue_waiting": "Many questions at once – you are number {place} in the queue.",
        "backend_error": "The language model is not reachable or busy right now. Please try again in a "
        "moment; if this persists, contact your administrator.",
        "unexpected_error": "An unexpected error occurred. Please try again; the error was logged for "
        "your administrator.",
        "setup_error": "Hauswissen is not fully set up: {reason}",
        "index_error": "The knowledge base cannot be read right now. The error was logged for your "
        "administrator.",
    },
}


def translate(language: UILanguage, key: str, **values: object) -> str:
    """The string ``key`` in ``language`` with ``values`` filled in (German when a key is missing)."""
    template = TEXTS[language].get(key) or TEXTS["de"][key]
    return template.format(**values) if values else template


def error_text(language: UILanguage, code: str | None, params: dict[str, object], fallback: str) -> str:
    """A user error in ``language`` when its code has a text here, else the library's own message."""
    for key in (code, f"err_{code}") if code else ():
        if key in TEXTS[language]:
            return translate(language, key, **params)
    return fallback


def format_number(value: float, language: UILanguage) -> str:
    """1234 -> '1.234' (de) or '1,234' (en)."""
    text = f"{value:,.0f}"
    return text.replace(",", ".") if language == "de" else text
