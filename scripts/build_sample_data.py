#!/usr/bin/env python
"""Build the bundled sample data under ``pipelines/resources/``.

1. ``sample_corpus/lang=<code>/part-00000.parquet`` (columns ``doc_id``, ``text``) from the plain-text
   sources ``data/sample_src/<code>.txt`` (one document per block, blocks separated by a blank line),
   plus ``lang=mixed`` with a handful of hostile documents defined below.
2. ``ner_sample/{train,dev}.conll`` + ``README.md``: CoNLL-2003 layout (``token POS chunk tag``, POS and
   chunk are ``_``), IOB2 tags over PER/LOC/ORG, generated from per-language templates whose slots are
   filled from per-language name lists with a fixed seed. Tokens are cut exactly like
   ``pipelines.text.tokens`` cuts them with its default rules (reimplemented here so that this script
   has no dependency on the package): whitespace, then a leading and a trailing run of the context
   characters ``. , ; : ! ? * - ( ) " '`` (each run one token), then every CJK ideograph on its own.

Everything is deterministic: fixed seeds, fixed row order, no timestamps. Run::

    .venv/bin/python scripts/build_sample_data.py          # build + check
    .venv/bin/python scripts/build_sample_data.py --check  # only check what is there
"""

from __future__ import annotations

import argparse
import random
import re
import shutil
import sys
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
SRC_DIR = ROOT / "data" / "sample_src"
RES_DIR = ROOT / "pipelines" / "resources"
CORPUS_DIR = RES_DIR / "sample_corpus"
NER_DIR = RES_DIR / "ner_sample"

CORPUS_LANGS = ("ar", "de", "en", "es", "fr", "hi", "it", "ja", "ko", "ru", "zh")
SEED = 20240517

# --------------------------------------------------------------------------------------------------
# 1. Corpus
# --------------------------------------------------------------------------------------------------

_LONG_URL = (
    "https://data.example.org/archive/2024/05/17/"
    + "/".join(f"segment-{i:02d}-{'abcdefghij'[i % 10] * 6}" for i in range(14))
    + "?session=" + "0123456789abcdef" * 2
)
_LONG_URL = _LONG_URL[:300]
assert len(_LONG_URL) == 300 and " " not in _LONG_URL

# (doc_id suffix, text) - text may be None (a null value in the Parquet file).
MIXED_DOCS: list[str | None] = [
    "",
    " \t \n\n   \u3000 \u00a0 ",
    None,
    "Control\x00characters\x07 in the\u200bmiddle of words, an \u202eright-to-left override\u202c, "
    "a form feed\x0c and a BOM\ufeff here.",
    "Family \U0001F468\u200d\U0001F469\u200d\U0001F467\u200d\U0001F466 at the beach \U0001F3D6\ufe0f, "
    "flags \U0001F1E9\U0001F1EA\U0001F1EB\U0001F1F7\U0001F1EF\U0001F1F5\U0001F1FA\U0001F1F3 "
    "and skin tones \U0001F44B\U0001F3FD\U0001F44D\U0001F3FF!!! \U0001F600\U0001F600\U0001F600",
    "Meeting in Berlin с коллегами из Москвы و مع أصدقاء من القاهرة और दिल्ली के साथी, 以及东京的朋友 "
    "(see 会議資料 p. 3) on 2024-05-17.",
    f"See {_LONG_URL} for the full report.",
    "Cafe\u0301 nai\u0308ve Zoe\u0308 \u2014 e\u0301\u0301\u0301 and Z\u0337a\u0337l\u0337g\u0337o\u0337 "
    "t\u0334e\u0334x\u0334t\u0334, Hangul jamo \u1100\u1161\u11a8 and Devanagari \u0915\u094d\u0937\u093f.",
    "?!... --- *** (((\"''\")))",
]


def read_docs(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8").replace("\r\n", "\n")
    docs = []
    for block in re.split(r"\n[ \t]*\n", text):
        block = "\n".join(line.rstrip() for line in block.strip().split("\n"))
        if block:
            docs.append(block)
    return docs


def write_partition(lang: str, ids: list[str], texts: list[str | None]) -> Path:
    out = CORPUS_DIR / f"lang={lang}" / "part-00000.parquet"
    out.parent.mkdir(parents=True, exist_ok=True)
    table = pa.table(
        {"doc_id": pa.array(ids, type=pa.string()), "text": pa.array(texts, type=pa.string())}
    )
    pq.write_table(table, out, compression="snappy")
    return out


def build_corpus() -> None:
    if CORPUS_DIR.exists():
        shutil.rmtree(CORPUS_DIR)
    for lang in CORPUS_LANGS:
        docs = read_docs(SRC_DIR / f"{lang}.txt")
        write_partition(lang, [f"{lang}-{i:04d}" for i in range(1, len(docs) + 1)], docs)
    write_partition("mixed", [f"mixed-{i:04d}" for i in range(1, len(MIXED_DOCS) + 1)], MIXED_DOCS)


# --------------------------------------------------------------------------------------------------
# 2. NER sample
# --------------------------------------------------------------------------------------------------

CONTEXT_CHARS = ".,;:!?*-()\"'"
_CTX = re.escape(CONTEXT_CHARS)
_WORD_RULE = re.compile(rf"\A([{_CTX}]*)([^{_CTX}](?:.*[^{_CTX}])*)([{_CTX}]*)\Z", re.DOTALL)
CJK_RE = re.compile(
    "[\u4e00-\u9fff\u3400-\u4dbf\uf900-\ufaff"
    "\U00020000-\U0002a6df\U0002a700-\U0002b73f\U0002b740-\U0002b81f\U0002b820-\U0002ceaf"
    "\U0002f800-\U0002fa1f]"
)


def tokenize(text: str) -> list[tuple[int, int]]:
    """(start, end) of every token, end exclusive; mirrors pipelines.text.tokens defaults."""
    spans: list[tuple[int, int]] = []
    for m in re.finditer(r"\S+", text):
        s, e = m.span()
        rule = _WORD_RULE.match(text[s:e])
        if rule is None:  # only context characters: kept whole
            pieces = [(s, e)]
        else:
            pieces = [(s + rule.start(g), s + rule.end(g)) for g in (1, 2, 3) if rule.end(g) > rule.start(g)]
        for a, b in pieces:
            cur = a
            for c in CJK_RE.finditer(text, a, b):
                if c.start() > cur:
                    spans.append((cur, c.start()))
                spans.append((c.start(), c.end()))
                cur = c.end()
            if b > cur:
                spans.append((cur, b))
    return spans


def _names(block: str) -> list[str]:
    return [n.strip() for n in block.split(";") if n.strip()]


# Person names marked "/f" are female (used to pick gendered words in templates: {g:masc|fem}).
# Russian places are "nominative|prepositional". A leading lowercase "the " (English) is written before
# the name but is not part of the entity.
NER_DATA: dict[str, dict] = {
    "en": dict(
        per=_names(
            "John Smith; Mary Johnson/f; David Miller; Sarah Thompson/f; Michael Brown; Emily Clark/f;"
            "James Wilson; Laura Davies/f; Robert Evans; Jennifer Lewis/f; William Turner; Olivia Harris/f;"
            "Daniel Walker; Sophie Green/f; Thomas Wright; Rachel Hughes/f; Peter Morgan; Hannah Cooper/f;"
            "Andrew Bell; Grace Murphy/f; Christopher Hall; Megan Ward/f; Patrick O'Neill; Fiona Campbell/f;"
            "Kevin Patel; Aisha Khan/f; Mark Robinson; Lucy Adams/f; George Baker; Helen Carter/f"
        ),
        per_dev=_names(
            "Brian Kelly; Natalie Scott/f; Samuel Price; Chloe Bennett/f; Oliver Reed; Amanda Foster/f;"
            "Ryan Collins; Jessica Howard/f; Nathan Brooks; Victoria Gray/f"
        ),
        loc=_names(
            "London; Manchester; Birmingham; Leeds; Glasgow; Edinburgh; Cardiff; Belfast; Dublin; Bristol;"
            "Liverpool; New York; Chicago; Boston; Seattle; Toronto; Sydney; Melbourne; Auckland; Cape Town;"
            "Nairobi; Mumbai; Singapore; Texas; California; Scotland; Wales; Canada; Australia; Ireland"
        ),
        loc_dev=_names(
            "Oxford; Cambridge; San Francisco; Denver; Vancouver; Brisbane; Lagos; Kenya; Ohio; New Zealand"
        ),
        org=_names(
            "Microsoft; Google; Amazon; BBC; Reuters; Barclays; HSBC; Tesco; Unilever; Rolls-Royce;"
            "British Airways; Vodafone; the United Nations; the World Health Organization; NASA;"
            "Harvard University; Stanford University; the Bank of England; the Red Cross; Greenpeace;"
            "Ford Motor Company; General Electric; Boeing; Pfizer; Netflix; IBM; Intel; Oxfam;"
            "Manchester United; the National Health Service"
        ),
        org_dev=_names(
            "Apple; Shell; BP; Deloitte; Siemens; Yale University; Amnesty International; Arsenal; Nokia; Samsung"
        ),
        templates=[
            "{P} said on Monday that the project would go ahead.",
            "{P}, a spokesperson for {O}, declined to comment.",
            "The meeting took place in {L} last week.",
            "{O} reported record profits for the second quarter.",
            "Shares of {O} fell 3 percent in early trading on Wednesday.",
            "{P} was born in {L} in 1975.",
            "Police in {L} are searching for a missing hiker.",
            "\"We are very pleased with the result,\" said {P}.",
            "{P}, chief executive of {O}, will step down in June.",
            "Heavy rain caused flooding across {L} on Sunday.",
            "{O} plans to open a new office in {L} next year.",
            "According to {P}, the talks with {O} were productive.",
            "Dr. {PS} works as a researcher at {O}.",
            "The festival in {L} attracted more than 20,000 visitors.",
            "{P} and {P2} met in {L} to discuss the merger.",
            "A report published by {O} warns of rising food prices in {L}.",
            "{P} scored twice as the team won the match in {L}.",
            "Flights from {L} to {L2} were cancelled because of fog.",
            "{P} joined {O} in 2019 after ten years in {L}.",
            "{PS} told reporters that the deal was fair.",
            "Residents of {L} will vote in a referendum next month.",
            "{O} has been fined by regulators in {L}.",
            "{P} thanked the staff of {O} for their support.",
            "The new bridge in {L} was opened by {P} on Friday.",
            "Workers at {O} went on strike on Thursday.",
            "{P} moved from {L} to {L2} as a child.",
            "The conference in {L} was organised by {O}.",
            "{O} and {O2} signed a partnership agreement.",
            "In an interview, {P} criticised the plans of {O}.",
            "Is {P} really leaving {O}?",
            "Sales rose by 5 percent in the third quarter.",
            "The weather will stay dry and sunny over the weekend.",
        ],
    ),
    "de": dict(
        per=_names(
            "Anna Schmidt; Thomas Müller; Julia Weber; Michael Fischer; Katharina Becker; Stefan Wagner;"
            "Laura Hoffmann; Andreas Schulz; Sabine Koch; Markus Richter; Lena Klein; Jan Wolf; Claudia Neumann;"
            "Tobias Schwarz; Miriam Braun; Florian Zimmermann; Petra Krüger; Jonas Hartmann; Nina Lange;"
            "Felix Schmitt; Ayşe Yılmaz; Lukas Werner; Sophie Krause; Matthias Meier; Hannah Lehmann;"
            "Dieter Schröder; Ursula Köhler; Kai Böhm; Marie Vogel; Benedikt Frank"
        ),
        per_dev=_names(
            "Johanna Berger; Moritz Keller; Elif Demir; Niklas Fuchs; Carina Roth; Sebastian Lorenz;"
            "Greta Sommer; Paul Engel; Ingrid Haas; Tim Jäger"
        ),
        loc=_names(
            "Berlin; Hamburg; München; Köln; Frankfurt; Stuttgart; Düsseldorf; Leipzig; Dresden; Hannover;"
            "Nürnberg; Bremen; Freiburg; Heidelberg; Rostock; Kiel; Wien; Graz; Salzburg; Zürich; Basel; Bern;"
            "Bayern; Sachsen; Brandenburg; Österreich; Frankreich; Polen; Italien; Dänemark"
        ),
        loc_dev=_names(
            "Innsbruck; Mainz; Bonn; Erfurt; Potsdam; Luzern; Thüringen; Tschechien; Ungarn; Regensburg"
        ),
        org=_names(
            "Siemens; Volkswagen; BMW; Lufthansa; Bosch; BASF; Bayer; Adidas; Puma; SAP; Allianz; Commerzbank;"
            "Porsche; Aldi; Lidl; Zalando; Henkel; Continental; Beiersdorf; Merck; Infineon; Rheinmetall;"
            "Fresenius; Vonovia; Hapag-Lloyd; Miele; Haribo; Rossmann; Trumpf; Zeiss"
        ),
        org_dev=_names(
            "Evonik; Sartorius; Stihl; Vaillant; Viessmann; Brose; Knorr-Bremse; Uniper; Lanxess; Kärcher"
        ),
        templates=[
            "{P} sagte am Montag, dass das Projekt fortgesetzt wird.",
            "Das Treffen fand vergangene Woche in {L} statt.",
            "{O} hat für das zweite Quartal einen Rekordgewinn gemeldet.",
            "{P}, Vorstandsmitglied bei {O}, wollte sich nicht äußern.",
            "Die Polizei in {L} sucht nach einem vermissten Wanderer.",
            "{P} wurde 1980 in {L} geboren.",
            "Laut {P} waren die Gespräche mit {O} konstruktiv.",
            "Dr. {PS} arbeitet seit Jahren für {O}.",
            "{O} will im kommenden Jahr ein Büro in {L} eröffnen.",
            "Der Zug von {L} nach {L2} fiel wegen eines Sturms aus.",
            "Die Aktie von {O} verlor am Mittwoch zwei Prozent.",
            "{P} und {P2} trafen sich in {L} zu vertraulichen Gesprächen.",
            "Ein Bericht von {O} warnt vor steigenden Mieten in {L}.",
            "Die Beschäftigten von {O} streiken seit Dienstag.",
            "Das Festival in {L} zog über 30.000 Besucher an.",
            "{P} erzielte beim Auswärtssieg in {L} zwei Tore.",
            "{P} leitet seit 2018 das Unternehmen {O}.",
            "Im Interview kritisierte {P} die Pläne von {O}.",
            "Die Einwohner von {L} stimmen im Mai über den Neubau ab.",
            "{O} und {O2} haben eine Kooperation vereinbart.",
            "Die neue Brücke in {L} wurde am Freitag von {P} eröffnet.",
            "{P} zog als Kind von {L} nach {L2}.",
            "Nach Angaben von {O} sind die Preise im Oktober gestiegen.",
            "Heftige Regenfälle haben in {L} zu Überschwemmungen geführt.",
            "Wie {PS} mitteilte, wird die Entscheidung vertagt.",
            "Wechselt {P} wirklich zu {O}?",
            "Der Umsatz stieg im dritten Quartal um fünf Prozent.",
            "Am Wochenende bleibt es trocken und sonnig.",
        ],
    ),
    "fr": dict(
        per=_names(
            "Marie Dubois/f; Jean Martin; Sophie Bernard/f; Pierre Lefebvre; Camille Moreau/f; Nicolas Laurent;"
            "Julie Girard/f; Thomas Roux; Claire Fournier/f; François Mercier; Céline Blanc/f; Julien Faure;"
            "Nathalie Garnier/f; Mathieu Chevalier; Isabelle Lambert/f; Romain Bonnet; Aurélie Fontaine/f;"
            "Vincent Rousseau; Léa Perrin/f; Guillaume Morel; Karim Benali; Fatou Diallo/f; Sébastien Gauthier;"
            "Manon Robin/f; Laurent Clément; Chloé Masson/f; Philippe Marchand; Sandrine Colin/f; Yann Le Gall;"
            "Pauline Caron/f"
        ),
        per_dev=_names(
            "Baptiste Renard; Margaux Lemaire/f; Samir Haddad; Élodie Barbier/f; Quentin Brunet;"
            "Lucie Picard/f; Damien Collet; Inès Meyer/f; Cédric Vidal; Solène Rey/f"
        ),
        loc=_names(
            "Paris; Lyon; Marseille; Toulouse; Bordeaux; Lille; Nantes; Strasbourg; Montpellier; Rennes; Nice;"
            "Grenoble; Dijon; Brest; Rouen; Metz; Nancy; Reims; Toulon; Perpignan; Bruxelles; Genève; Lausanne;"
            "Montréal; Québec; Dakar; Tunis; Casablanca; Bamako; Liège"
        ),
        loc_dev=_names(
            "Caen; Tours; Limoges; Besançon; Poitiers; Namur; Sherbrooke; Lomé; Rabat; Bayonne"
        ),
        org=_names(
            "Renault; Peugeot; Michelin; Carrefour; Danone; BNP Paribas; Société Générale; Capgemini; Thales;"
            "Sanofi; Decathlon; TotalEnergies; Veolia; Vinci; Bouygues; Dassault Aviation; Safran; Kering;"
            "Chanel; Publicis; Stellantis; Schneider Electric; Pernod Ricard; Saint-Gobain; Legrand; Ubisoft;"
            "Crédit Mutuel; Natixis; Doctolib; BlaBlaCar"
        ),
        org_dev=_names(
            "Lactalis; Bonduelle; Sodexo; Valeo; Nexans; Galeries Lafayette; Pierre Fabre; Fnac Darty;"
            "Deezer; Vallourec"
        ),
        templates=[
            "{P} a déclaré lundi que le projet serait maintenu.",
            "La réunion s'est tenue la semaine dernière à {L}.",
            "{O} a annoncé des bénéfices records pour le deuxième trimestre.",
            "Selon {P}, les négociations avec {O} avancent bien.",
            "{P} a grandi à {L} avant de s'installer à {L2}.",
            "Le groupe {O} va ouvrir un bureau à {L} l'an prochain.",
            "Les vols entre {L} et {L2} ont été annulés à cause du brouillard.",
            "{P} et {P2} se sont retrouvés à {L} pour discuter de l'accord.",
            "{P}, {g:directeur général|directrice générale} du groupe {O}, quittera ses fonctions en juin.",
            "Un rapport publié par {O} alerte sur la hausse des loyers à {L}.",
            "{P} a marqué deux buts lors de la victoire à {L}.",
            "{O} et {O2} ont signé un accord de partenariat.",
            "Le festival de {L} a attiré plus de 20 000 spectateurs.",
            "Les salariés du groupe {O} sont en grève depuis mardi.",
            "La police de {L} recherche un randonneur disparu.",
            "Dans un communiqué, {O} a confirmé la fermeture de son usine de {L}.",
            "Le Dr {PS} a confirmé le diagnostic.",
            "De fortes pluies ont provoqué des inondations à {L}.",
            "{P} travaille depuis dix ans chez {O}.",
            "{g:M.|Mme} {PS} n'a pas souhaité s'exprimer.",
            "Le maire de {L} a reçu {P} à l'hôtel de ville.",
            "{P} est {g:arrivé|arrivée} à {L} mardi soir.",
            "Les actions du groupe {O} ont reculé de 2 % à la Bourse de {L}.",
            "Pourquoi {P} quitte-t-{g:il|elle} {O} ?",
            "Il fera beau et chaud tout le week-end.",
            "Les prix ont augmenté de 3 % en mars.",
        ],
    ),
    "es": dict(
        per=_names(
            "María García/f; José Martínez; Lucía Fernández/f; Carlos López; Ana Sánchez/f; Javier Pérez;"
            "Carmen Gómez/f; Miguel Díaz; Laura Romero/f; David Navarro; Elena Torres/f; Pablo Ruiz;"
            "Marta Jiménez/f; Sergio Moreno; Isabel Castillo/f; Andrés Vargas; Sofía Herrera/f; Diego Ramírez;"
            "Valentina Rojas/f; Alejandro Ortiz; Paula Molina/f; Raúl Delgado; Gabriela Medina/f; Fernando Castro;"
            "Daniela Suárez/f; Jorge Mendoza; Patricia Vega/f; Manuel Guerrero; Camila Reyes/f; Luis Aguilar"
        ),
        per_dev=_names(
            "Beatriz Cano/f; Rodrigo Fuentes; Natalia Ibarra/f; Héctor Salazar; Inés Domínguez/f;"
            "Mateo Cabrera; Rocío Pastor/f; Emilio Benítez; Adriana Rivas/f; Tomás Carrasco"
        ),
        loc=_names(
            "Madrid; Barcelona; Valencia; Sevilla; Bilbao; Zaragoza; Málaga; Granada; Salamanca; Toledo; Córdoba;"
            "Murcia; Alicante; Santander; Oviedo; Cádiz; Galicia; Andalucía; Cataluña; México; Bogotá; Lima;"
            "Santiago; Buenos Aires; Montevideo; Quito; Caracas; Guadalajara; Medellín; Monterrey"
        ),
        loc_dev=_names(
            "Pamplona; Valladolid; Burgos; Cusco; Rosario; Cali; Asunción; La Paz; Puebla; Tenerife"
        ),
        org=_names(
            "Telefónica; Iberia; Inditex; Mercadona; Repsol; Banco Santander; BBVA; CaixaBank; Iberdrola; Mapfre;"
            "Seat; Renfe; El Corte Inglés; Real Madrid; FC Barcelona; Atlético de Madrid; RTVE;"
            "Universidad de Salamanca; CSIC; Pemex; Bimbo; Cemex; Televisa; Falabella; Avianca; Ecopetrol;"
            "Mercado Libre; Cruz Roja; Naturgy; Ferrovial"
        ),
        org_dev=_names(
            "Acciona; Endesa; Banco Sabadell; Mango; Indra; Grifols; Bankinter; Aeroméxico; Copa Airlines; Codelco"
        ),
        templates=[
            "{P} afirmó el lunes que el proyecto seguirá adelante.",
            "La reunión se celebró la semana pasada en {L}.",
            "{O} anunció unos beneficios récord en el segundo trimestre.",
            "Según {P}, las negociaciones con {O} avanzan a buen ritmo.",
            "{P} nació en {L} en 1978 y se mudó a {L2} a los veinte años.",
            "{O} abrirá una nueva oficina en {L} el próximo año.",
            "Los vuelos entre {L} y {L2} fueron cancelados por la niebla.",
            "{P} y {P2} se reunieron en {L} para hablar del acuerdo.",
            "{P}, {g:consejero delegado|consejera delegada} de {O}, dejará el cargo en junio.",
            "Un informe de {O} advierte de la subida de los alquileres en {L}.",
            "{P} marcó dos goles en la victoria de su equipo en {L}.",
            "{O} y {O2} firmaron un acuerdo de colaboración.",
            "El festival de {L} reunió a más de 20.000 personas.",
            "Los trabajadores de {O} están en huelga desde el martes.",
            "La policía de {L} busca a un excursionista desaparecido.",
            "En una entrevista, {P} criticó duramente la decisión de {O}.",
            "{g:El doctor|La doctora} {PS} confirmó el diagnóstico.",
            "Las lluvias torrenciales provocaron inundaciones en {L}.",
            "{P} trabaja desde hace diez años en {O}.",
            "{g:El Sr.|La Sra.} {PS} no quiso hacer declaraciones.",
            "El alcalde de {L} recibió a {P} en el ayuntamiento.",
            "{P} llegó a {L} el martes por la noche.",
            "Las acciones de {O} cayeron un 2 % en la bolsa de {L}.",
            "¿Qué opina {P} sobre el nuevo plan de {O}?",
            "El tiempo será soleado durante todo el fin de semana.",
            "Los precios subieron un 3 % en marzo.",
        ],
    ),
    "ru": dict(
        per=_names(
            "Иван Петров; Анна Смирнова/f; Сергей Кузнецов; Мария Иванова/f; Алексей Соколов; Елена Попова/f;"
            "Дмитрий Волков; Ольга Новикова/f; Андрей Морозов; Наталья Лебедева/f; Михаил Козлов;"
            "Татьяна Егорова/f; Николай Павлов; Ирина Семёнова/f; Павел Голубев; Екатерина Виноградова/f;"
            "Артём Богданов; Светлана Воробьёва/f; Владимир Фёдоров; Юлия Михайлова/f; Максим Беляев;"
            "Ксения Тарасова/f; Роман Белов; Дарья Комарова/f; Игорь Орлов; Алина Киселева/f;"
            "Тимур Хабибуллин; Айгуль Сафина/f; Георгий Макаров; Вера Андреева/f"
        ),
        per_dev=_names(
            "Кирилл Зайцев; Полина Медведева/f; Антон Никитин; Марина Соловьёва/f; Олег Захаров;"
            "Софья Борисова/f; Руслан Ахметов; Людмила Крылова/f; Денис Гусев; Валерия Титова/f"
        ),
        loc=_names(
            "Москва|Москве; Санкт-Петербург|Санкт-Петербурге; Казань|Казани; Новосибирск|Новосибирске;"
            "Екатеринбург|Екатеринбурге; Самара|Самаре; Омск|Омске; Томск|Томске; Иркутск|Иркутске;"
            "Владивосток|Владивостоке; Калининград|Калининграде; Сочи|Сочи; Нижний Новгород|Нижнем Новгороде;"
            "Пермь|Перми; Уфа|Уфе; Воронеж|Воронеже; Волгоград|Волгограде; Красноярск|Красноярске;"
            "Хабаровск|Хабаровске; Мурманск|Мурманске; Архангельск|Архангельске; Ярославль|Ярославле;"
            "Тула|Туле; Минск|Минске; Алматы|Алматы; Ташкент|Ташкенте; Берлин|Берлине; Париж|Париже;"
            "Лондон|Лондоне; Пекин|Пекине"
        ),
        loc_dev=_names(
            "Челябинск|Челябинске; Барнаул|Барнауле; Вологда|Вологде; Астрахань|Астрахани;"
            "Краснодар|Краснодаре; Ереван|Ереване; Баку|Баку; Рим|Риме; Псков|Пскове; Якутск|Якутске"
        ),
        org=_names(
            "Яндекс; Сбербанк; Аэрофлот; Газпром; Лукойл; Роснефть; Ростелеком; Росатом; Северсталь; Норникель;"
            "Магнит; ВТБ; МТС; Мегафон; Билайн; Озон; Вайлдберриз; АвтоВАЗ; КамАЗ; РЖД; Татнефть; Сибур; Полюс;"
            "Альфа-Банк; Русал; Уралкалий; Аэроэкспресс; Росбанк; Совкомбанк; Евраз"
        ),
        org_dev=_names(
            "Фосагро; Акрон; Мечел; Сургутнефтегаз; Алроса; Транснефть; Интер РАО; Черкизово; Росгосстрах; Мосэнерго"
        ),
        templates=[
            "{P} считает, что переговоры идут успешно.",
            "Как отмечает {P}, ситуация в {L.prep} остаётся сложной.",
            "{P} и {P2} обсуждают новый проект в {L.prep}.",
            "Об этом журналистам рассказывает {P}.",
            "На конференции в {L.prep} выступает {P}.",
            "{P}, генеральный директор компании {O}, покидает свой пост.",
            "{O} объявляет о запуске нового сервиса.",
            "{O} планирует открыть офис в {L.prep}.",
            "{P} возглавляет {O} с 2019 года.",
            "Сегодня {O} и {O2} подписывают соглашение о сотрудничестве.",
            "Как сообщает {O}, цены на жильё в {L.prep} растут.",
            "Поезд {L} — {L2} отменён из-за снегопада.",
            "{L} готовится к международному фестивалю.",
            "В {L.prep} проходит чемпионат по лёгкой атлетике.",
            "В {L.prep} сегодня ожидается сильный снег.",
            "Полиция в {L.prep} ищет пропавшего туриста.",
            "Акции компании {O} подешевели на 2 %.",
            "{P} живёт в {L.prep} уже десять лет.",
            "Новый мост в {L.prep} открывает {P}.",
            "Представители компании {O} пока не комментируют ситуацию.",
            "Доктор {PS} подтверждает диагноз.",
            "{P} забивает два гола, и команда побеждает в {L.prep}.",
            "Неужели {P} уходит из компании {O}?",
            "Погода в выходные будет солнечной.",
            "Цены выросли на 3 % за месяц.",
        ],
    ),
    "ar": dict(
        per=_names(
            "محمد العلي; أحمد حسن; فاطمة الزهراء/f; علي محمود; سارة خالد/f; يوسف إبراهيم; مريم عبد الله/f;"
            "خالد الشمري; نور الهدى/f; عمر فاروق; ليلى منصور/f; حسن الخطيب; رانيا العمري/f; طارق زيد;"
            "هدى سالم/f; كريم عبد الرحمن; سلمى الحسيني/f; إبراهيم النعيمي; منى الشريف/f; ماجد القحطاني;"
            "دينا عادل/f; سامي الحداد; ريم العتيبي/f; عبد الله الكعبي; أمل المصري/f; وليد الدوسري;"
            "جميلة بوعلي/f; ياسين المرزوقي; لينا حداد/f; فيصل العنزي"
        ),
        per_dev=_names(
            "زياد الخطيب; نادية السيد/f; بلال عثمان; سعاد بن يوسف/f; مصطفى القاسم; رشا الأحمد/f;"
            "حمزة الراشد; إيمان التونسي/f; أنس الفاسي; هالة رشيد/f"
        ),
        loc=_names(
            "القاهرة; الإسكندرية; الرياض; جدة; دبي; أبوظبي; الدوحة; الكويت; مسقط; المنامة; عمّان; بيروت; دمشق;"
            "بغداد; البصرة; الموصل; القدس; غزة; تونس; الجزائر; الرباط; الدار البيضاء; مراكش; طرابلس; الخرطوم;"
            "صنعاء; عدن; حلب; الأقصر; أسوان"
        ),
        loc_dev=_names(
            "فاس; وهران; صفاقس; إربد; طنجة; الشارقة; مكة المكرمة; العقبة; حمص; نواكشوط"
        ),
        org=_names(
            "جامعة القاهرة; جامعة الملك سعود; أرامكو السعودية; طيران الإمارات; الخطوط الجوية القطرية;"
            "مصر للطيران; سابك; اتصالات; بنك مصر; البنك الأهلي; الجزيرة; العربية; جامعة الدول العربية;"
            "الهلال الأحمر; منظمة الصحة العالمية; الأمم المتحدة; البنك الدولي; صندوق النقد الدولي; النادي الأهلي;"
            "نادي الزمالك; نادي الهلال; نادي الوداد; الجامعة الأمريكية في بيروت; موانئ دبي العالمية; إعمار;"
            "بنك قطر الوطني; زين; أوريدو; المراعي; الاتحاد الأفريقي"
        ),
        org_dev=_names(
            "جامعة الأزهر; طيران الخليج; بنك الكويت الوطني; نادي الترجي; الخطوط الملكية المغربية; موبايلي;"
            "أدنوك; هيئة قناة السويس; منظمة اليونسكو; بنك الرياض"
        ),
        templates=[
            "{g:قال|قالت} {P} إن المشروع سيستمر كما هو مخطط له.",
            "عقد الاجتماع في {L} الأسبوع الماضي.",
            "أعلنت {O} عن أرباح قياسية خلال الربع الثاني.",
            "بحسب {P} فإن المحادثات مع {O} كانت إيجابية.",
            "{g:ولد|ولدت} {P} في {L} عام 1985.",
            "تعتزم {O} افتتاح مكتب جديد في {L} العام المقبل.",
            "ألغيت الرحلات بين {L} ومدينة {L2} بسبب العاصفة.",
            "{g:التقى|التقت} {P} مع {P2} في {L} لبحث التعاون.",
            "{g:يشغل|تشغل} {P} منصب المدير التنفيذي في {O} منذ عام 2018.",
            "أصدرت {O} تقريرا يحذر من ارتفاع الأسعار في {L}.",
            "{g:سجل|سجلت} {P} هدفين في المباراة التي أقيمت في {L}.",
            "وقعت {O} اتفاقية شراكة مع {O2}.",
            "تستضيف {L} مهرجانا ثقافيا كبيرا الشهر المقبل.",
            "{g:أكد|أكدت} {P} في مقابلة صحفية أن الأسعار ستنخفض.",
            "{g:يعيش|تعيش} {P} في {L} منذ عشر سنوات.",
            "شارك موظفو {O} في إضراب يوم الخميس.",
            "{g:افتتح|افتتحت} {P} الجسر الجديد في {L} يوم الجمعة.",
            "تشهد {L} ارتفاعا كبيرا في درجات الحرارة هذا الأسبوع.",
            "{g:زار|زارت} د. {P} مقر {O} في {L}.",
            "{g:انتقل|انتقلت} {P} من {L} إلى {L2} في {g:طفولته|طفولتها}.",
            "تبحث الشرطة في {L} عن سائح مفقود.",
            "هل {g:يغادر|تغادر} {P} {g:منصبه|منصبها} في {O} قريبا؟",
            "انخفضت أسهم {O} بنسبة 2 في المئة يوم الأربعاء.",
            "يتوقع أن يكون الطقس مشمسا خلال عطلة نهاية الأسبوع.",
        ],
    ),
    "hi": dict(
        per=_names(
            "राहुल शर्मा; प्रिया सिंह; अमित कुमार; सुनीता देवी; विकास गुप्ता; अंजलि वर्मा; राजेश यादव; पूजा मिश्रा;"
            "संजय पटेल; नेहा अग्रवाल; अरुण जोशी; कविता चौहान; मनोज त्रिपाठी; दीपिका राव; सुरेश रेड्डी;"
            "मीना सक्सेना; रोहित मेहता; स्नेहा कुलकर्णी; आदित्य नायर; फ़ातिमा ख़ान; इमरान क़ुरैशी; हरप्रीत कौर;"
            "गुरप्रीत सिंह; लक्ष्मी अय्यर; विनोद पांडे; रीना दास; अनिल भट्ट; सीमा बंसल; करण मल्होत्रा;"
            "आयशा सिद्दीक़ी"
        ),
        per_dev=_names(
            "तरुण सेठी; पल्लवी देशपांडे; निखिल चतुर्वेदी; रुख़साना बेगम; प्रकाश हेगड़े; श्वेता रस्तोगी;"
            "अभिषेक दुबे; मोनिका गिल; सलीम अंसारी; ज्योति बिष्ट"
        ),
        loc=_names(
            "दिल्ली; मुंबई; कोलकाता; चेन्नई; बेंगलुरु; हैदराबाद; पुणे; अहमदाबाद; जयपुर; लखनऊ; पटना; भोपाल;"
            "इंदौर; वाराणसी; चंडीगढ़; अमृतसर; शिमला; देहरादून; नागपुर; सूरत; गुवाहाटी; कानपुर; रांची;"
            "राजस्थान; बिहार; केरल; पंजाब; नेपाल; लंदन; दुबई"
        ),
        loc_dev=_names("आगरा; मैसूर; उदयपुर; कोच्चि; भुवनेश्वर; रायपुर; गोवा; असम; काठमांडू; सिंगापुर"),
        org=_names(
            "टाटा स्टील; इंफ़ोसिस; रिलायंस इंडस्ट्रीज़; भारतीय रेलवे; इसरो; भारतीय स्टेट बैंक; एयर इंडिया; महिंद्रा;"
            "बजाज ऑटो; विप्रो; एचडीएफ़सी बैंक; आईसीआईसीआई बैंक; दिल्ली विश्वविद्यालय; आईआईटी बॉम्बे;"
            "जवाहरलाल नेहरू विश्वविद्यालय; भारतीय रिज़र्व बैंक; मारुति सुज़ुकी; अमूल; पतंजलि; फ़्लिपकार्ट;"
            "ज़ोमैटो; ओला; इंडिगो; भारती एयरटेल; लार्सन एंड टुब्रो; बीसीसीआई; संयुक्त राष्ट्र;"
            "विश्व स्वास्थ्य संगठन; ऑल इंडिया रेडियो; दूरदर्शन"
        ),
        org_dev=_names(
            "हीरो मोटोकॉर्प; एचसीएल; पेटीएम; स्विगी; गेल; ओएनजीसी; एम्स; कोल इंडिया; डाबर; गोदरेज"
        ),
        templates=[
            "{P} ने सोमवार को कहा कि परियोजना जारी रहेगी।",
            "बैठक पिछले हफ़्ते {L} में हुई।",
            "{O} ने इस साल रिकॉर्ड मुनाफ़ा दर्ज किया है।",
            "{P} के अनुसार {O} के साथ बातचीत सकारात्मक रही।",
            "{P} का जन्म 1985 में {L} में हुआ था।",
            "{O} अगले साल {L} में नया दफ़्तर खोलेगी।",
            "{L} और {L2} के बीच उड़ानें कोहरे के कारण रद्द कर दी गईं।",
            "{P} और {P2} ने {L} में मुलाक़ात की।",
            "{P} साल 2018 से {O} के प्रमुख हैं।",
            "{O} की एक रिपोर्ट में {L} में बढ़ती महँगाई पर चिंता जताई गई है।",
            "{P} ने {L} में खेले गए मैच में दो गोल किए।",
            "{O} और {O2} ने एक साझेदारी समझौते पर हस्ताक्षर किए।",
            "{L} में अगले महीने एक बड़ा सांस्कृतिक उत्सव होगा।",
            "{O} के कर्मचारी गुरुवार से हड़ताल पर हैं।",
            "डॉ. {P} ने अस्पताल में मरीज़ों की जाँच की।",
            "{L} में भारी बारिश के कारण कई सड़कें बंद हैं।",
            "{P} ने {O} की नई योजना की आलोचना की।",
            "{L} की पुलिस एक लापता पर्यटक की तलाश कर रही है।",
            "{P} बचपन में {L} से {L2} आ गए थे।",
            "{O} के शेयर बुधवार को 3 प्रतिशत गिर गए।",
            "क्या {P} सचमुच {O} छोड़ रहे हैं?",
            "{P} पिछले दस साल से {O} में काम कर रहे हैं।",
            "इस हफ़्ते मौसम साफ़ और धूप वाला रहेगा।",
        ],
    ),
    "zh": dict(
        per=_names(
            "张伟; 王芳/f; 李娜/f; 刘洋; 陈静/f; 杨磊; 赵敏/f; 黄晓峰; 周杰; 吴刚; 徐丽/f; 孙浩; 马晓燕/f; 朱明;"
            "胡月/f; 郭强; 何琳/f; 林涛; 高翔; 罗佳/f; 郑凯; 梁欣/f; 宋雨/f; 谢飞; 韩雪梅/f; 唐亮; 冯丹/f; 许诺;"
            "邓婷/f; 曹阳"
        ),
        per_dev=_names("彭磊; 曾静/f; 吕博; 蒋欣然/f; 蔡文; 贾鹏; 丁一凡; 魏红/f; 薛冰/f; 叶子涵/f"),
        loc=_names(
            "北京; 上海; 广州; 深圳; 杭州; 南京; 成都; 重庆; 武汉; 西安; 天津; 苏州; 长沙; 青岛; 厦门; 昆明;"
            "大连; 沈阳; 哈尔滨; 郑州; 济南; 福州; 兰州; 拉萨; 乌鲁木齐; 香港; 澳门; 台北; 东京; 伦敦"
        ),
        loc_dev=_names("合肥; 南昌; 贵阳; 南宁; 海口; 银川; 西宁; 珠海; 首尔; 巴黎"),
        org=_names(
            "华为; 阿里巴巴; 腾讯; 百度; 小米; 京东; 中国银行; 中国移动; 中国石油; 国家电网; 比亚迪; 联想; 海尔;"
            "格力; 中国国际航空公司; 南方航空; 清华大学; 北京大学; 复旦大学; 浙江大学; 中国科学院; 新华社;"
            "中央电视台; 人民日报; 美团; 字节跳动; 中国工商银行; 招商银行; 吉利汽车; 上汽集团"
        ),
        org_dev=_names("网易; 拼多多; 大疆; 宁德时代; 中兴通讯; 武汉大学; 中山大学; 中国建设银行; 东方航空; 万科"),
        templates=[
            "{P}周一表示，该项目将继续推进。",
            "会议上周在{L}举行。",
            "{O}宣布今年第二季度利润创下新高。",
            "据{P}介绍，与{O}的谈判进展顺利。",
            "{P}出生于{L}，大学毕业后一直在{L2}工作。",
            "{O}计划明年在{L}设立新的办事处。",
            "由于大雾，{L}飞往{L2}的航班全部取消。",
            "{P}和{P2}在{L}会面，讨论合作事宜。",
            "{P}自二〇一八年起担任{O}总裁。",
            "{O}发布报告称，{L}的房价持续上涨。",
            "{P}在比赛中攻入两球，帮助球队在{L}取得胜利。",
            "{O}与{O2}签署了战略合作协议。",
            "{L}下个月将举办大型文化节。",
            "{O}的员工从周四开始罢工。",
            "{L}警方正在寻找一名失踪的游客。",
            "{P}在接受记者采访时批评了{O}的新政策。",
            "记者从{O}获悉，新产品将于下月上市。",
            "{L}遭遇强降雨，多条道路被淹。",
            "{P}博士在{O}从事研究工作。",
            "{P}是{L}人，现居{L2}。",
            "{P}真的要离开{O}吗？",
            "受股市下跌影响，{O}的股价周三下跌了百分之三。",
            "本周末天气晴好，适合外出。",
        ],
    ),
    "ja": dict(
        per=_names(
            "田中太郎; 佐藤花子/f; 鈴木健太; 高橋美咲/f; 伊藤翔; 渡辺愛/f; 山本大輔; 中村桜/f; 小林誠; 加藤由美/f;"
            "吉田拓也; 山田優子/f; 松本健; 井上真理/f; 木村拓海; 林美穂/f; 清水大樹; 山口恵/f; 森田浩二; 池田彩/f;"
            "橋本陽介; 阿部千尋/f; 石川直樹; 前田結衣/f; 藤田剛; 岡田真由/f; 後藤健一; 長谷川光; 村上春香/f;"
            "近藤勇気"
        ),
        per_dev=_names("斎藤蓮; 坂本美月/f; 遠藤翼; 青木陽菜/f; 西村誠司; 福田明里/f; 太田悠真; 三浦七海/f; 原田航; 小川千夏/f"),
        loc=_names(
            "東京; 大阪; 京都; 名古屋; 横浜; 札幌; 福岡; 神戸; 仙台; 広島; 那覇; 金沢; 奈良; 長崎; 熊本; 静岡;"
            "新潟; 北海道; 沖縄; 九州; 四国; 千葉; 埼玉; 鎌倉; 函館; 上海; 北京; 台湾; 韓国; 米国"
        ),
        loc_dev=_names("岡山; 松山; 富山; 青森; 鹿児島; 高松; 岐阜; 台北; 香港; 英国"),
        org=_names(
            "任天堂; 日立製作所; 三菱商事; 本田技研工業; 日本航空; 全日本空輸; 東京大学; 京都大学; 早稲田大学;"
            "慶應義塾大学; 日本銀行; 三井住友銀行; 楽天; 日本放送協会; 朝日新聞; 読売新聞; 東日本旅客鉄道;"
            "日産自動車; 富士通; 資生堂; 武田薬品工業; 理化学研究所; 国際連合; 東芝; 三菱重工業; 住友化学;"
            "野村證券; 日本経済新聞; 東京電力; 気象庁"
        ),
        org_dev=_names(
            "大阪大学; 東北大学; 日本郵便; 花王; 伊藤忠商事; 関西電力; 毎日新聞; 大和証券; 西日本旅客鉄道; 鹿島建設"
        ),
        templates=[
            "{P}氏は月曜日、計画を継続すると述べた。",
            "会議は先週{L}で開かれた。",
            "{O}は第2四半期に過去最高の利益を発表した。",
            "{P}さんによると、{O}との交渉は順調に進んでいる。",
            "{P}さんは{L}出身で、現在は{L2}に住んでいる。",
            "{O}は来年、{L}に新しい事務所を開設する予定だ。",
            "濃霧のため、{L}発{L2}行きの便が欠航となった。",
            "{P}氏と{P2}氏は{L}で会談した。",
            "{P}氏は2018年から{O}の社長を務めている。",
            "{O}が発表した報告書によると、{L}の家賃が上昇している。",
            "{P}選手が2得点を挙げ、チームは{L}で勝利した。",
            "{O}と{O2}は業務提携で合意した。",
            "来月、{L}で大規模な祭りが開かれる。",
            "{O}の従業員が木曜日からストライキに入った。",
            "{L}の警察は行方不明の観光客を捜している。",
            "{P}教授は{O}で研究を続けている。",
            "{L}では大雨の影響で道路が冠水した。",
            "{P}さんは{O}に勤めている。",
            "{P}氏は本当に{O}を辞めるのだろうか。",
            "{O}の株価は水曜日に3%下落した。",
            "週末は晴れて暖かくなる見込みだ。",
        ],
    ),
}

NER_LANGS = ("en", "de", "fr", "es", "ru", "ar", "hi", "zh", "ja")
TRAIN_PER_LANG = 167
DEV_PER_LANG = 34
DEV_HELDOUT_P = 0.5  # dev slots draw from the held-out names with this probability
DOC_EVERY = 25  # a -DOCSTART- line every this many sentences (and at every language change)

_SLOT_RE = re.compile(r"\{(P2?|PS|L2?|O2?)(?:\.(prep))?\}|\{g:([^|{}]*)\|([^{}]*)\}")
_TYPE = {"P": "PER", "L": "LOC", "O": "ORG"}


def _parse_person(entry: str) -> tuple[str, str]:
    name, _, g = entry.partition("/")
    return name, ("f" if g == "f" else "m")


def fill_template(lang: str, template: str, rng: random.Random, heldout_p: float):
    """Returns (text, [(start, end, TYPE)]) for one template."""
    data = NER_DATA[lang]
    chosen: dict[str, str] = {}
    for m in _SLOT_RE.finditer(template):
        slot = m.group(1)
        if not slot or slot in chosen:
            continue
        kind = "P" if slot == "PS" else slot[0]
        key = {"P": "per", "L": "loc", "O": "org"}[kind]
        pool = data[key + "_dev"] if heldout_p and rng.random() < heldout_p else data[key]
        taken = {chosen[s] for s in chosen if (("P" if s == "PS" else s[0]) == kind)}
        while True:
            entry = rng.choice(pool)
            if entry not in taken:
                break
        chosen[slot] = entry
    gender = "m"
    for slot in ("P", "PS"):
        if slot in chosen:
            gender = _parse_person(chosen[slot])[1]
            break

    out: list[str] = []
    spans: list[tuple[int, int, str]] = []
    pos = 0
    length = 0
    for m in _SLOT_RE.finditer(template):
        lit = template[pos : m.start()]
        out.append(lit)
        length += len(lit)
        pos = m.end()
        if m.group(1) is None:  # gendered alternative
            word = m.group(3) if gender == "m" else m.group(4)
            out.append(word)
            length += len(word)
            continue
        slot, case = m.group(1), m.group(2)
        entry = chosen[slot]
        if slot[0] == "P" or slot == "PS":
            value = _parse_person(entry)[0]
            if slot == "PS":
                value = value.split()[-1]
        else:
            forms = entry.split("|")
            value = forms[1] if case == "prep" else forms[0]
        if value.startswith("the "):  # English article: outside the entity, capitalised at the start
            article = "The " if length == 0 else "the "
            value = value[4:]
            out.append(article)
            length += len(article)
        if lang == "ru" and case == "prep" and value.startswith("Вл"):
            prev = "".join(out)
            if re.search(r"(^|\s)[вВ] $", prev):  # "в Владивостоке" -> "во Владивостоке"
                out = [prev[:-1] + "о "]
                length += 1
        spans.append((length, length + len(value), _TYPE[slot[0]]))
        out.append(value)
        length += len(value)
    out.append(template[pos:])
    text = "".join(out)
    for s, e, _ in spans:
        assert text[s:e].strip() == text[s:e], (lang, template, text)
    return text, spans


def label(text: str, spans: list[tuple[int, int, str]]) -> list[tuple[str, str]]:
    toks = tokenize(text)
    starts = {a for a, _ in toks}
    ends = {b for _, b in toks}
    for s, e, _ in spans:
        if s not in starts or e not in ends:
            raise ValueError(f"entity {text[s:e]!r} does not fall on token boundaries in {text!r}")
    rows = []
    for a, b in toks:
        tag = "O"
        for s, e, t in spans:
            if a >= s and b <= e:
                tag = ("B-" if a == s else "I-") + t
            elif a < e and b > s:
                raise ValueError(f"token {text[a:b]!r} straddles entity {text[s:e]!r}")
        rows.append((text[a:b], tag))
    return rows


def generate_split(lang: str, n: int, rng: random.Random, heldout_p: float, seen: set[str]):
    templates = NER_DATA[lang]["templates"]
    sents = []
    attempts = 0
    while len(sents) < n:
        order = list(range(len(templates)))
        rng.shuffle(order)
        for i in order:
            if len(sents) >= n:
                break
            attempts += 1
            if attempts > 50 * n:
                raise RuntimeError(f"{lang}: cannot generate {n} distinct sentences")
            text, spans = fill_template(lang, templates[i], rng, heldout_p)
            if text in seen:
                continue
            seen.add(text)
            sents.append((text, label(text, spans)))
    return sents


def write_conll(path: Path, blocks: list[tuple[str, list]]) -> None:
    lines: list[str] = []
    for _lang, sents in blocks:
        for k, (_text, rows) in enumerate(sents):
            if k % DOC_EVERY == 0:
                lines += ["-DOCSTART- -X- -X- O", ""]
            lines += [f"{tok} _ _ {tag}" for tok, tag in rows]
            lines.append("")
    path.write_text("\n".join(lines), encoding="utf-8")


def _entity_counts(sents) -> Counter:
    c: Counter = Counter()
    for _text, rows in sents:
        for _tok, tag in rows:
            if tag.startswith("B-"):
                c[tag[2:]] += 1
    return c


def build_ner() -> dict:
    NER_DIR.mkdir(parents=True, exist_ok=True)
    for lang in NER_LANGS:
        d = NER_DATA[lang]
        for key in ("per", "loc", "org"):
            assert len(d[key]) >= 30 and len(set(d[key])) == len(d[key]), (lang, key)
            assert not set(d[key]) & set(d[key + "_dev"]), (lang, key)
    train_blocks, dev_blocks, stats = [], [], {}
    for li, lang in enumerate(NER_LANGS):
        seen: set[str] = set()
        train = generate_split(lang, TRAIN_PER_LANG, random.Random(SEED + 100 * li), 0.0, seen)
        dev = generate_split(lang, DEV_PER_LANG, random.Random(SEED + 100 * li + 1), DEV_HELDOUT_P, seen)
        train_blocks.append((lang, train))
        dev_blocks.append((lang, dev))
        stats[lang] = {"train": (len(train), _entity_counts(train)), "dev": (len(dev), _entity_counts(dev))}
    write_conll(NER_DIR / "train.conll", train_blocks)
    write_conll(NER_DIR / "dev.conll", dev_blocks)
    write_ner_readme(stats)
    return stats


def write_ner_readme(stats: dict) -> None:
    rows = []
    tot = {"train": [0, Counter()], "dev": [0, Counter()]}
    for lang in NER_LANGS:
        cells = [lang]
        for split in ("train", "dev"):
            n, c = stats[lang][split]
            tot[split][0] += n
            tot[split][1] += c
            cells.append(f"{n} ({c['PER']}/{c['LOC']}/{c['ORG']})")
        rows.append("| " + " | ".join(cells) + " |")
    cells = ["**total**"]
    for split in ("train", "dev"):
        n, c = tot[split]
        cells.append(f"{n} ({c['PER']}/{c['LOC']}/{c['ORG']})")
    rows.append("| " + " | ".join(cells) + " |")
    table = "\n".join(rows)
    text = f"""# NER sample (synthetic)

Generated by `scripts/build_sample_data.py` (seed {SEED}); do not edit by hand, re-run the script.

* Layout: CoNLL-2003, one token per line `token POS chunk tag` (POS and chunk are always `_`), a blank
  line between sentences, a `-DOCSTART- -X- -X- O` line at the start of every language and every
  {DOC_EVERY} sentences. Tags are IOB2 over `PER`, `LOC`, `ORG` (no `MISC`).
* Languages, in file order: {", ".join(NER_LANGS)}.
* Sentences come from hand-written templates per language (news-style contexts such as "X said",
  "in X", "X announced", "X, chief executive of Y"), with slots filled from per-language lists of
  30 person names, 30 places and 30 organisations (culturally fitting; people are invented, places
  and organisations are real names used in invented sentences). Some templates have no entity.
* `dev.conll` uses the same templates, but each slot takes a name from a separate held-out list
  (10 per type and language, never in train) with probability {DEV_HELDOUT_P}; no dev sentence is
  identical to a train sentence.
* Tokens are cut the way `pipelines.text.tokens` cuts with its default rules: whitespace, then a
  leading and a trailing run of `. , ; : ! ? * - ( ) " '` (each run is one token, e.g. `Dr.` ->
  `Dr` `.`), then every CJK ideograph is its own token. Chinese and Japanese entities are therefore
  `B-`/`I-` sequences over single characters (all zh/ja names are written in ideographs only, so
  kana runs never touch an entity). Punctuation outside that list stays attached (Hindi `।` ends
  the last word, e.g. `है।`); templates are written so that it never touches an entity.

Sentences (PER/LOC/ORG entity counts):

| lang | train | dev |
|---|---|---|
{table}
"""
    (NER_DIR / "README.md").write_text(text, encoding="utf-8")


# --------------------------------------------------------------------------------------------------
# 3. Checks
# --------------------------------------------------------------------------------------------------

# Rough sentence count for reporting only: a terminator, then whitespace, then anything but a lowercase
# Latin/Cyrillic letter; CJK/Devanagari/Arabic terminators; line breaks (letters).
_SENT_END = re.compile(r"(?<=[.!?])\s+(?=[^a-zß-ÿа-яё])|(?<=[。！？।؟])\s*|\n+")


def approx_sentences(text: str) -> int:
    return len([s for s in _SENT_END.split(text) if s and s.strip()])


def check_corpus(verbose: bool = True) -> dict[str, int]:
    dataset = ds.dataset(CORPUS_DIR, format="parquet", partitioning="hive")
    table = dataset.to_table()
    assert set(table.column_names) == {"doc_id", "text", "lang"}, table.column_names
    counts: Counter = Counter(table.column("lang").to_pylist())
    for lang in CORPUS_LANGS + ("mixed",):
        part = pq.read_table(CORPUS_DIR / f"lang={lang}" / "part-00000.parquet")
        assert part.column_names == ["doc_id", "text"], part.column_names
        ids = part.column("doc_id").to_pylist()
        assert len(ids) == len(set(ids)) and all(i.startswith(f"{lang}-") for i in ids)
        if lang != "mixed":
            assert part.num_rows >= 25, (lang, part.num_rows)
            assert part.column("text").null_count == 0
            if verbose:
                texts = part.column("text").to_pylist()
                lens = sorted(len(t) for t in texts)
                print(
                    f"  corpus {lang}: {part.num_rows} docs, ~{sum(approx_sentences(t) for t in texts)} "
                    f"sentences, chars min/median/max {lens[0]}/{lens[len(lens) // 2]}/{lens[-1]}"
                )
    if verbose:
        print(f"  corpus mixed: {counts['mixed']} docs; dataset total {table.num_rows} rows")
    return dict(counts)


def check_conll(path: Path) -> tuple[int, Counter]:
    n_sent, ents = 0, Counter()
    prev = "O"
    in_sent = False
    for lineno, line in enumerate(path.read_text(encoding="utf-8").split("\n"), 1):
        if not line.strip():
            if in_sent:
                n_sent += 1
            in_sent, prev = False, "O"
            continue
        cols = line.split(" ")
        assert len(cols) == 4, f"{path.name}:{lineno}: {len(cols)} columns"
        tok, pos, chunk, tag = cols
        if tok == "-DOCSTART-":
            assert cols == ["-DOCSTART-", "-X-", "-X-", "O"] and not in_sent
            continue
        assert pos == "_" and chunk == "_", f"{path.name}:{lineno}"
        assert tag == "O" or re.fullmatch(r"[BI]-(PER|LOC|ORG)", tag), f"{path.name}:{lineno}: {tag}"
        if tag.startswith("I-"):
            assert prev in (f"B-{tag[2:]}", tag), f"{path.name}:{lineno}: {tag} after {prev}"
        if tag.startswith("B-"):
            ents[tag[2:]] += 1
        prev, in_sent = tag, True
    if in_sent:
        n_sent += 1
    return n_sent, ents


def check_all(verbose: bool = True) -> None:
    check_corpus(verbose)
    for name in ("train.conll", "dev.conll"):
        n, ents = check_conll(NER_DIR / name)
        if verbose:
            print(f"  {name}: {n} sentences, entities {dict(sorted(ents.items()))}")
    total = sum(p.stat().st_size for p in RES_DIR.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    if verbose:
        print(f"  pipelines/resources total size: {total / 1024:.1f} KiB")
    assert total < 2 * 1024 * 1024


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--check", action="store_true", help="only check the existing output")
    args = ap.parse_args(argv)
    if not args.check:
        build_corpus()
        build_ner()
        print(f"wrote {CORPUS_DIR.relative_to(ROOT)} and {NER_DIR.relative_to(ROOT)}")
    check_all()
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
