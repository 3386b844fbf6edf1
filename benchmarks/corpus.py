"""A deterministic multilingual benchmark corpus: documents of 1-5 generated sentences, Parquet by language.

Sentences recombine the words of a few hand-written seed sentences per language (Latin, Cyrillic, Greek,
Arabic, Devanagari, CJK scripts), with a lognormal length spread clipped to 5..120 words, commas, numbers
and compound words. The benchmark model's WordPiece vocabulary is trained on the seed sentences only, so
numbers and compounds split into several pieces, as rare words do with a real multilingual vocabulary.
The first N sentences of a 2N corpus are the N corpus (same seed): the scaling check compares like with like.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# language -> seed sentences. "cjk": no spaces between words (words are 1-3 character chunks).
SEEDS: dict[str, list[str]] = {
    "en": [
        "The city council approved a new budget for public transport on Tuesday evening.",
        "Researchers at the university published a study about rising sea levels and coastal erosion.",
        "The company reported higher profits in the third quarter despite weaker demand in Europe.",
        "Thousands of people gathered in the main square to celebrate the national holiday.",
        "The museum will open a new exhibition of modern photography next month.",
        "Heavy rain caused flooding in several villages along the river during the weekend.",
        "The minister said that the government would invest more money in schools and hospitals.",
        "Local farmers expect a good harvest after a warm and sunny summer.",
    ],
    "de": [
        "Der Stadtrat hat am Dienstag einen neuen Haushalt für den öffentlichen Nahverkehr beschlossen.",
        "Forscher der Universität veröffentlichten eine Studie über den steigenden Meeresspiegel.",
        "Das Unternehmen meldete im dritten Quartal trotz schwächerer Nachfrage höhere Gewinne.",
        "Tausende Menschen versammelten sich auf dem Marktplatz, um den Feiertag zu feiern.",
        "Größere Straßen führen über die Brücke nach Köln und Düsseldorf.",
        "Die Regierung will mehr Geld in Schulen, Krankenhäuser und Bahnstrecken investieren.",
    ],
    "fr": [
        "Le conseil municipal a approuvé mardi un nouveau budget pour les transports publics.",
        "Des chercheurs de l'université ont publié une étude sur l'érosion des côtes.",
        "L'entreprise a annoncé des bénéfices en hausse malgré une demande plus faible en Europe.",
        "Des milliers de personnes se sont rassemblées sur la place principale pour la fête nationale.",
        "Le musée présentera le mois prochain une exposition de photographie contemporaine.",
        "Où est la bibliothèque? Elle est à côté de l'église, près du café.",
    ],
    "es": [
        "El ayuntamiento aprobó el martes un nuevo presupuesto para el transporte público.",
        "Investigadores de la universidad publicaron un estudio sobre la subida del nivel del mar.",
        "La empresa registró mayores beneficios en el tercer trimestre pese a una demanda más débil.",
        "Miles de personas se reunieron en la plaza mayor para celebrar la fiesta nacional.",
        "¿Dónde está la estación de tren? Mañana viajaré a Sevilla con mi niña.",
    ],
    "it": [
        "Il consiglio comunale ha approvato martedì un nuovo bilancio per i trasporti pubblici.",
        "Il Colosseo si trova a Roma ed è uno dei monumenti più famosi d'Italia.",
        "Migliaia di persone si sono radunate nella piazza principale per la festa nazionale.",
    ],
    "pl": [
        "Rada miasta przyjęła we wtorek nowy budżet na transport publiczny.",
        "Warszawa jest stolicą Polski, a Wisła przepływa przez miasto.",
        "Tysiące ludzi zebrały się na rynku, aby świętować narodowe święto.",
    ],
    "tr": [
        "Belediye meclisi salı günü toplu taşıma için yeni bir bütçeyi onayladı.",
        "İstanbul, Boğaziçi'nin iki yakasında kurulmuş büyük bir şehirdir.",
        "Binlerce kişi ulusal bayramı kutlamak için ana meydanda toplandı.",
    ],
    "vi": [
        "Hội đồng thành phố đã thông qua ngân sách mới cho giao thông công cộng vào thứ Ba.",
        "Hà Nội là thủ đô của Việt Nam, nằm bên sông Hồng.",
    ],
    "ru": [
        "Городской совет во вторник утвердил новый бюджет на общественный транспорт.",
        "Учёные университета опубликовали исследование о повышении уровня моря.",
        "Компания сообщила о росте прибыли в третьем квартале, несмотря на слабый спрос в Европе.",
        "Тысячи людей собрались на главной площади, чтобы отпраздновать национальный праздник.",
        "Москва — столица России, а Санкт-Петербург стоит на Неве.",
        "Сильные дожди вызвали наводнение в нескольких деревнях вдоль реки.",
    ],
    "uk": [
        "Міська рада у вівторок затвердила новий бюджет на громадський транспорт.",
        "Київ розташований на берегах Дніпра, а влітку тут дуже тепло.",
    ],
    "el": [
        "Το δημοτικό συμβούλιο ενέκρινε την Τρίτη νέο προϋπολογισμό για τις δημόσιες συγκοινωνίες.",
        "Η Αθήνα είναι η πρωτεύουσα της Ελλάδας και έχει την Ακρόπολη.",
    ],
    "ar": [
        "وافق مجلس المدينة يوم الثلاثاء على ميزانية جديدة للنقل العام.",
        "نشر باحثون في الجامعة دراسة عن ارتفاع مستوى سطح البحر وتآكل السواحل.",
        "أعلنت الشركة عن أرباح أعلى في الربع الثالث رغم ضعف الطلب في أوروبا.",
        "تجمع آلاف الأشخاص في الساحة الرئيسية للاحتفال بالعيد الوطني.",
        "القاهرة هي عاصمة مصر وتقع على ضفاف نهر النيل.",
    ],
    "hi": [
        "नगर परिषद ने मंगलवार को सार्वजनिक परिवहन के लिए नए बजट को मंज़ूरी दी।",
        "विश्वविद्यालय के शोधकर्ताओं ने समुद्र के बढ़ते स्तर पर एक अध्ययन प्रकाशित किया।",
        "कंपनी ने यूरोप में कमज़ोर मांग के बावजूद तीसरी तिमाही में अधिक मुनाफ़ा दर्ज किया।",
        "नई दिल्ली भारत की राजधानी है और यमुना नदी के किनारे स्थित है।",
        "हज़ारों लोग राष्ट्रीय त्योहार मनाने के लिए मुख्य चौक पर इकट्ठा हुए।",
    ],
    "zh": [
        "市议会周二批准了一项新的公共交通预算。",
        "大学的研究人员发表了一项关于海平面上升和海岸侵蚀的研究。",
        "尽管欧洲需求疲软，该公司第三季度利润仍有所增长。",
        "数千人聚集在主广场庆祝国庆节。",
        "北京是中华人民共和国的首都，长城位于北京北部。",
    ],
    "ja": [
        "市議会は火曜日に公共交通機関の新しい予算を承認した。",
        "大学の研究者たちは海面上昇と海岸侵食に関する研究を発表した。",
        "東京は日本の首都で、富士山は静岡県と山梨県にまたがっています。",
        "数千人が国民の祝日を祝うために中央広場に集まった。",
    ],
    "ko": [
        "시의회는 화요일 대중교통을 위한 새 예산을 승인했다.",
        "대학 연구진은 해수면 상승과 해안 침식에 관한 연구를 발표했다.",
        "서울은 대한민국의 수도이며 한강이 도시를 가로지릅니다.",
        "수천 명의 사람들이 국경일을 축하하기 위해 중앙 광장에 모였다.",
    ],
}
CJK = {"zh", "ja"}
# Share of sentences per language (roughly a web crawl's: English first, a long tail of others).
WEIGHTS = {"en": 18, "de": 8, "fr": 8, "es": 8, "it": 4, "pl": 3, "tr": 3, "vi": 3, "ru": 9, "uk": 3, "el": 2,
           "ar": 8, "hi": 7, "zh": 7, "ja": 5, "ko": 4}
ENDINGS = {"zh": "。", "ja": "。", "hi": "।", "ar": ".", "default": "."}
_PUNCT = ".,;:!?()\"'“”«»—–-¿¡।。、，！？؟"

# Sentence length in words: lognormal (median 17, mean ~21), clipped to [5, 120].
LENGTH_MEDIAN, LENGTH_SIGMA, MIN_WORDS, MAX_WORDS = 17.0, 0.65, 5, 120


def seed_texts() -> list[str]:
    """The sentences the benchmark model's vocabulary is trained on."""
    return [s for lang in sorted(SEEDS) for s in SEEDS[lang]]


def _pool(lang: str) -> list[str]:
    words: list[str] = []
    for s in SEEDS[lang]:
        if lang in CJK:
            chars = [c for c in s if c.isalnum()]
            words.extend("".join(chars[i : i + 2]) for i in range(0, len(chars), 2))
        else:
            words.extend(w for w in (t.strip(_PUNCT) for t in s.split()) if w)
    return sorted(set(words))


@dataclass(frozen=True)
class Corpus:
    docs: list[tuple[str, str, str]]  # (doc_id, lang, text)
    sentences: int  # sentences as the job's SentenceDetector finds them (>= the requested number)
    generated: int  # sentences generated (the detector merges a few, e.g. after a number)
    words: int

    def digest(self) -> str:
        h = hashlib.sha256()
        for d, lang, text in self.docs:
            h.update(f"{d}\t{lang}\t{text}\n".encode("utf-8"))
        return h.hexdigest()[:16]


def _sentence(rng: np.random.Generator, lang: str, pool: list[str]) -> tuple[str, int]:
    n = int(np.clip(round(rng.lognormal(np.log(LENGTH_MEDIAN), LENGTH_SIGMA)), MIN_WORDS, MAX_WORDS))
    words = []
    for _ in range(n):
        r = rng.random()
        if r < 0.04:
            w = str(int(rng.integers(2, 10_000))) if rng.random() < 0.7 else f"{rng.integers(1, 100)},{rng.integers(0, 10)}%"
        elif r < 0.16 and lang not in CJK:  # a compound or inflected form the vocabulary has not seen
            w = pool[int(rng.integers(len(pool)))] + pool[int(rng.integers(len(pool)))].lower()
        else:
            w = pool[int(rng.integers(len(pool)))]
        if lang not in CJK and rng.random() < 0.07:
            w += ","
        words.append(w)
    if lang in CJK:
        text = "".join(w.rstrip(",") for w in words)
    else:
        text = " ".join(words).rstrip(",")
        text = text[0].upper() + text[1:]
    end = ENDINGS.get(lang, ENDINGS["default"])
    if lang not in CJK and lang != "hi" and rng.random() < 0.1:
        end = "?" if lang != "ar" else "؟"
    return text + end, n


def generate(n_sentences: int, seed: int = 0) -> Corpus:
    """Documents of 1-5 sentences until the job's SentenceDetector finds at least ``n_sentences`` in
    them; the corpus is a prefix of any larger one with the same seed."""
    from pipelines.text.sentences import split_sentences

    rng = np.random.default_rng(seed)
    langs = sorted(WEIGHTS)
    p = np.array([WEIGHTS[lang] for lang in langs], dtype=float)
    p /= p.sum()
    pools = {lang: _pool(lang) for lang in langs}
    docs, total, generated, words = [], 0, 0, 0
    while total < n_sentences:
        lang = langs[int(rng.choice(len(langs), p=p))]
        k = int(rng.integers(1, 6))
        parts = []
        for _ in range(k):
            s, n = _sentence(rng, lang, pools[lang])
            parts.append(s)
            words += n
        sep = "" if lang in CJK else " "
        text = sep.join(parts)
        docs.append((f"{lang}-{len(docs):07d}", lang, text))
        generated += k
        total += len(split_sentences(text, lang))
    return Corpus(docs, total, generated, words)


def write_parquet(corpus: Corpus, root: str | Path, docs_per_file: int = 0) -> Path:
    """``root/lang=xx/part-NNNNN.parquet`` (doc_id, text), in generation order; ``docs_per_file`` 0: one file a language."""
    import shutil

    import pyarrow as pa
    import pyarrow.parquet as pq

    root = Path(root)
    if root.exists():
        shutil.rmtree(root)
    by_lang: dict[str, list[tuple[str, str]]] = {}
    for d, lang, text in corpus.docs:
        by_lang.setdefault(lang, []).append((d, text))
    for lang, rows in sorted(by_lang.items()):
        part = root / f"lang={lang}"
        part.mkdir(parents=True)
        size = docs_per_file or len(rows)
        for i in range(0, len(rows), size):
            chunk = rows[i : i + size]
            table = pa.table({"doc_id": [r[0] for r in chunk], "text": [r[1] for r in chunk]})
            pq.write_table(table, part / f"part-{i // size:05d}.parquet")
    return root
