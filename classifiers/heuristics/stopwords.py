"""Small stop-word lists for Gopher's stop-word rule, per language (ISO 639-1).

Gopher (Rae et al. 2021, appendix A) keeps a document only if it contains at least two of the
English words "the, be, to, of, and, that, have, with": prose is full of function words, while
keyword lists, tables, menus and boilerplate are not. The English list below is Gopher's, as
published. For the other languages the lists are the very frequent function words of each
language (articles, copulas, conjunctions, prepositions, case particles), written for this
project and checked against the language-ID dev set (see bench/heuristics_eval.py and
bench/results/heuristics.md): each list is meant to occur at least twice in any few sentences
of real prose, and almost never in a list of names or numbers. The lists for lg, sn, st, tn,
ts, xh, yo, zu, and the longer lists for the agglutinative ka, kk, ko, ta, te, eu, az, mn (and
la), were picked from the most frequent function words of that dev set.

75 languages have a list (all the dev set's). Languages without one (for example lo, km, my,
ne, si, am) skip the rule: the signal is null and the document is not judged on it. Better no
rule than a rule that silently drops a whole language, which is what an English list does to
every non-English document.

Two kinds of matching:
- space-delimited languages match whole words (lower-cased, surrounding punctuation removed);
- Chinese, Japanese and Thai, written without spaces between words, match substrings, so the
  lists hold particles and function morphemes that are written the same wherever they occur.
"""

from __future__ import annotations

import unicodedata

# Whole-word lists (language -> words). Lower case; both Unicode normal forms are accepted
# (see _variants), so Yoruba tone marks or Bengali nukta compare equal whether precomposed.
_WORD_LISTS: dict[str, str] = {
    # Gopher's list, verbatim.
    "en": "the be to of and that have with",
    "af": "die en van in is het nie te 'n wat met om vir op sy ook was aan",
    "ar": "في من على أن إلى عن التي الذي مع هذا هذه ما لا كان و أو بين قد",
    "az": "və bu bir ilə də üçün ki da isə sonra kimi o çox onun tərəfindən idi ən olaraq olan "
    "görə hər daha lakin həmin öz belə ya",
    "be": "і ў у на не з што да а па як гэта ад для за ды але яго",
    "bg": "и на в да се за от с не е по че са това като но до",
    "bn": "ও এবং এই না করে হয় থেকে জন্য তার একটি যে কিন্তু সঙ্গে আর হয়েছে নিয়ে",
    "bs": "i je u na se da za su od sa s a ne o koji što iz kao će",
    "ca": "de la el i que a en les per els amb un una del no es és al",
    "cs": "a v se na je že to s z o do jako ale by k i pro jsou po",
    "cy": "y a yn i o ar yr ac mae ei gan am wedi fod bod ond hyn ym",
    "da": "og i at det en den til er som på de med for af ikke der har et",
    "de": "der die das und in zu den von mit ist sich des nicht ein eine auf für dem im auch es",
    "el": "και το να της την του τα η ο σε με για που τον οι από στο είναι των στην",
    "eo": "la kaj de en estas al ke por kun ne da pri el tiu sed ankaŭ estis",
    "es": "de la que el en y los del se las por un una con no para es al lo",
    "et": "ja on ei et see ka oli kui aga mis ta või ning siis mida kes oma seda",
    "eu": "eta da zen izan bat zuen ere ziren dira ez du bere egin zuten ditu dute edo baina dago "
    "beste den hau artean arabera",
    "fa": "و در به از که این را با است برای آن یک تا می بر هم",
    "fi": "ja on ei se että oli ovat hän mutta kun tai myös ole joka jo sen niin voi kuin",
    "fr": "le la les de des et un une du en est que qui pour dans pas au sur par il à",
    "ga": "an na agus ar i is le a go sa don ag ach nach bhí tá",
    "gu": "અને છે માં તે આ પણ એ કે ના ની નું નો થી પર હતી હતો કરી એક",
    "he": "של את על לא הוא עם זה כי גם אם היא או אל יש כל אני מה היה",
    "hi": "के की का में है और से को ने कि पर यह भी हैं एक तो था",
    "hr": "i je u na se da za su od s a ne o koji što iz kao će bi",
    "hu": "a az és hogy nem is egy meg van de csak már volt el ki mint ez azt",
    "hy": "և եւ է են որ ի մի այդ այս էր համար հետ նա իր ու չի",
    "id": "yang dan di ke dari ini itu dengan untuk tidak dalam akan pada juga ada oleh adalah",
    "is": "og í á að er sem til við um ekki var með en af það hann fyrir",
    "it": "di e il la che in a per un una del della non è le i si con da al",
    "ka": "და რომ არ ამ ის იგი კი როგორც არის ასევე მას ეს მაგრამ ხოლო ან მიერ მისი რომელიც თუმცა შემდეგ",
    "kk": "және мен бен пен да де та те бұл оның үшін деп ол осы сол ал бір бойынша болып сондай- ақ",
    "ko": "있다 있는 있습니다 있었다 이 그 등 등을 수 것 것은 것이 것을 것으로 것이다 한 할 하는 한다 했다 대한 대해 위해 따라 때문에 또 또는 및 더 그러나 "
    "하지만 그리고 같은 이런 그는",
    "la": "et est in ad cum sunt per a ut de quae qui non sed ab etiam eius fuit autem erat inter "
    "vel esse quod ex quam se atque",
    "lg": "mu ku ne nga era bwe ate oba kyokka naye nnyo kino",
    "lt": "ir į kad yra su iš ne o bet per tai kaip buvo jo nuo dėl taip",
    "lv": "un ir ar uz par no ka kas bet arī lai tas to vai ne pie kā jau",
    "mi": "te ki i o a ka he ngā me e kua nei ana kei mō mā ai",
    "mk": "и на во да се за од со не е по што ќе ги ја го кои а но",
    "mn": "нь байна юм ч энэ гэж байгаа л бол их олон байсан нэг тэр гэсэн дээр болон мөн бас харин биш",
    "mr": "आणि या व आहे की हे ते तो ही त्या होते आहेत केले एक पण असे म्हणून नाही",
    "ms": "yang dan di ke dari ini itu dengan untuk tidak dalam akan pada juga ada oleh telah kepada",
    "nb": "og i er det som på en til av for med at har ikke den de et om",
    "nl": "de het een en van in is dat op te voor met zijn niet die er aan ook",
    "nn": "og i er det som på ein til av for med at har ikkje den dei eit om å",
    "pa": "ਦੇ ਦੀ ਦਾ ਵਿੱਚ ਅਤੇ ਹੈ ਨੇ ਨੂੰ ਤੋਂ ਕਿ ਇਸ ਇਹ ਵੀ ਹਨ ਨਾਲ ਲਈ ਉਹ",
    "pl": "w i na nie z się to do że jest o jak a po co od za ale dla",
    "pt": "de a o que e do da em um uma para os no na com não se é as por dos",
    "ro": "și şi de în la a că cu pe nu din un o este mai pentru se care",
    "ru": "и в не на что с по это к как а из но о за то у от для он",
    "sk": "a v sa na je že to s z o do ako ale by k i pre sú po",
    "sl": "in je v na da se za so z s ki pa tudi ne o pri bi po kot",
    "sn": "kuti kana asi uye ini iyi ari uyu iri nekuti izvi ane apo sezvo kubva uyo iye saka pamwe",
    "so": "iyo oo ee ka ku in uu waa la ah aan ayaa u ay ma ugu soo",
    "sq": "të e në dhe i për me që një nga se është ka do nuk si u",
    # Serbian is written in both Cyrillic and Latin script.
    "sr": "i je u na se da za su od sa a ne o koji što iz kao će и је у на се да за су од са а не о који што из као ће",
    "st": "ho le ka e ya ba a o ha ke tse tsa sa se wa hore mme tla empa bona",
    "sv": "och i att det som en på är av för med till den har inte om ett var",
    "sw": "na ya wa kwa za katika ni la cha hii kuwa pia lakini huo hiyo kama",
    "ta": "ஒரு மற்றும் இது இந்த ஆகும் என்று என்பது அல்லது உள்ள பல என்ற போன்ற என என்னும் அவர் "
    "பின்னர் மேலும் தனது இருந்து ஆனால் உள்ளது மிகவும் அந்த இதன் அதன் மூலம் இதில்",
    "te": "మరియు ఈ ఒక యొక్క ఆ కూడా లో ఇది నుండి అని లేదా ఉన్న ఉంది తన తరువాత నుంచి అనే కి ను అయితే వలన ఉన్నాయి అది గా ద్వారా వద్ద కాని మీద",
    "tl": "ang ng sa na mga at ay si ni ko ito hindi para siya kung may",
    "tn": "go a le ka ba e o re ya fa mo ke gore ga ne mme di wa se sa kwa jaaka fela",
    "tr": "ve bir bu da de için ile çok daha gibi olarak ne o en ama kadar olan",
    "ts": "ku hi na ya eka va wa ta nga ka leswaku leswi loko leyi le lava",
    "uk": "і в у на що не з та до й а за як це від по для о але",
    "ur": "کے کی کا میں اور ہے سے کو نے کہ پر یہ بھی ہیں تھا ایک",
    "vi": "và của là có không các những được trong cho một đã với người này để khi đến",
    "xh": "ukuba okanye emva kwaye xa ke le kuba kunye kodwa ezi ukuze eli na lo yaye apha kakhulu nje apho",
    "yo": "ni ti ó tí ní ati o to a àti sí si ń bi yìí fi lati kan fún won wa sì pé náà jẹ́ ninu nínú fun tó",
    "zu": "ukuthi futhi uma kodwa kakhulu kanye ngoba noma lokhu lapho ukuba ukuze njengoba nje le lo kanti",
}

# Substring lists for languages written without spaces between words.
_SUBSTRING_LISTS: dict[str, str] = {
    # Structural particle, aspect markers, copula, common prepositions and adverbs;
    # simplified and traditional forms where they differ.
    "zh": "的 了 是 在 和 有 不 这 這 也 就 都 为 為 与 與",
    # Case and topic particles, copula and verb endings (written in hiragana).
    "ja": "の に は を が で と て た です ます する いる ある",
    # Relative pronoun, conjunctions, prepositions, copula and auxiliaries.
    "th": "ที่ และ ใน ของ เป็น การ ได้ มี จะ ไม่ ให้ ว่า กับ นี้ แต่ ก็",
}


def _variants(word: str) -> set[str]:
    return {unicodedata.normalize("NFC", word), unicodedata.normalize("NFD", word)}


STOP_WORDS: dict[str, frozenset[str]] = {
    lang: frozenset(v for w in words.split() for v in _variants(w)) for lang, words in _WORD_LISTS.items()
}
STOP_SUBSTRINGS: dict[str, tuple[str, ...]] = {
    lang: tuple(sorted({v for w in words.split() for v in _variants(w)})) for lang, words in _SUBSTRING_LISTS.items()
}
LANGUAGES_WITH_STOP_WORDS: frozenset[str] = frozenset(STOP_WORDS) | frozenset(STOP_SUBSTRINGS)
