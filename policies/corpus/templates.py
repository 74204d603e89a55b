"""Instruction templates per language and task kind, ``|``-separated, with slots
``{n}`` (plural noun), ``{a}`` (attribute), ``{v}`` (value), ``{x}`` (item name) that
``policies.corpus.instructions.fill`` fills from ``policies.corpus.fillers``.

Kinds and what goes where are described in ``policies.corpus.instructions``. The nouns avoid
the held-out evaluation's subjects (``benchmarks.routing_eval`` tests generalisation to them).
"""

from __future__ import annotations

# Templates per language and kind, "|"-separated.
TEMPLATES: dict[str, dict[str, str]] = {
    "en": {
        "chat": "Hello, how are you today?|Can you help me write a polite email to my landlord?"
        "|What's a good name for a bakery?|Explain recursion like I'm five.|Tell me a joke about "
        "cats.|Why does this code throw a KeyError?|How do I reverse a string in Python?|Rewrite "
        "this paragraph so it sounds more formal.|Translate this sentence into Spanish.|What is "
        "the difference between a list and a tuple?|Thanks, that helped a lot!|Fix the bug in "
        "this function.|Suggest three weekend activities for a rainy day.|How many cups are in a "
        "litre?|Can you make this shorter?|What should I cook tonight?|Is it better to rent or "
        "buy a flat?|Write a haiku about autumn.",
        "lookup": "What is the {a} of {x}?|When was {x} created?|Who is the owner of {x}?|Find "
        "the {a} recorded for {x}.|What does the document say about {x}?|Which {a} is listed "
        "for {x}?|Quote the line that mentions {x}.|What is the total amount on {x}?|What was the "
        "most recent {a} of {x}?|Is {x} mentioned anywhere, and where?|Look up {x} and tell me "
        "its {a}.|According to the text, what happened to {x} before it was closed?|What is "
        "the value of the {a} field for {x}?|Where in the file is {x} defined?|What does the "
        "option for {x} do?|Which line contains the error for {x}?",
        "aggregate": "How many {n} have the {a} {v}?|Count all {n} whose {a} is {v}.|What is "
        "the total {a} across all {n}?|What is the average {a} of the {n}?|Which {a} appears "
        "most often among the {n}?|Give me the distribution of {n} by {a}.|What fraction of the "
        "{n} are {v}?|Rank the {a} values by the number of {n}.|List all {n} with {a} {v}.|Sum "
        "the {a} over every one of the {n}.|Which {a} has the fewest {n}?|For each {a}, how "
        "many {n} are there?|Tally the {n} per {a} and sort them.|What percentage of {n} have "
        "{a} {v}?|Summarise all the {n} in one table by {a}.|Enumerate every {a} that occurs "
        "in the {n}, with counts.|What are the top ten {a} values by number of {n}?|How many "
        "distinct {a} values do the {n} have?|Group the {n} by {a} and give the size of each "
        "group.|Overall, what is the median {a} of the {n}?",
        "pairwise": "Find all pairs of {n} that share the same {a}.|List every pair of {n} "
        "with {a} {v} in both.|Which two {n} have the same {a}? Give all such pairs.|Return all "
        "couples of {n} whose {a} match, one pair per line.|Match up every pair of {n} with "
        "identical {a}.|Which pairs of {n} were created on the same {a}?|Give all pairs (A, B) "
        "of {n} where A and B have the same {a} and a different owner.|Compare every {n} with "
        "every other one and list the pairs with equal {a}.",
        "multihop": "Find the {a} of {x}, then list the other {n} with that {a}.|Who owns {x}, "
        "and which {n} does that person also own?|Take the {n} with the highest {a}, then tell "
        "me the {a} of whoever created it.|Which {a} does {x} belong to, and what is the "
        "largest of the {n} in that {a}?|Trace {x} through the records: what happened to it "
        "after its {a} changed?|Starting from {x}, follow its references to the final {n}.|How "
        "do the components of this codebase call each other? Map the call graph.|Which services "
        "in this code depend on which others?|Explain how data flows between the source files "
        "of this project.|Which methods across the whole code base are never called?|Find the "
        "handler that processes {x} and then the module that defines its caller.|Using the "
        "{a} of {x}, find the {n} that share it, and then their owners.",
    },
    "fr": {
        "chat": "Bonjour, comment ça va ?|Peux-tu m'aider à écrire un courriel poli à mon "
        "propriétaire ?|Quel nom donner à une boulangerie ?|Explique-moi la récursivité "
        "simplement.|Raconte-moi une blague.|Pourquoi ce code lève-t-il une KeyError ?|Comment "
        "inverser une chaîne en Python ?|Reformule ce paragraphe de façon plus soutenue."
        "|Traduis cette phrase en anglais.|Quelle est la différence entre une liste et un tuple "
        "?|Merci beaucoup !|Corrige le bug de cette fonction.|Que faire ce week-end s'il pleut "
        "?|Combien de centilitres dans un litre ?|Tu peux raccourcir ce texte ?|Qu'est-ce que je "
        "cuisine ce soir ?",
        "lookup": "Quel est le {a} de {x} ?|Quand {x} a-t-il été créé ?|Qui est le "
        "propriétaire de {x} ?|Trouve le {a} indiqué pour {x}.|Que dit le document à propos de "
        "{x} ?|Cite la ligne qui mentionne {x}.|Quel est le montant total de {x} ?|Quel était le "
        "{a} le plus récent de {x} ?|Où {x} est-il défini dans le fichier ?|Que fait l'option "
        "liée à {x} ?|Selon le texte, que s'est-il passé avant la clôture de {x} ?|Donne-moi "
        "seulement le {a} de {x}.|Dans quel fichier se trouve {x} ?",
        "aggregate": "Combien de {n} ont le {a} {v} ?|Compte tous les {n} dont le {a} est {v}."
        "|Quel est le {a} total de tous les {n} ?|Quelle est la moyenne du {a} des {n} ?|Quel "
        "{a} revient le plus souvent parmi les {n} ?|Donne la répartition des {n} par {a}."
        "|Quelle part des {n} est {v} ?|Classe les valeurs de {a} selon le nombre de {n}."
        "|Liste tous les {n} avec le {a} {v}.|Fais la somme du {a} sur l'ensemble des {n}."
        "|Pour chaque {a}, combien y a-t-il de {n} ?|Quel pourcentage des {n} a le {a} {v} ?"
        "|Résume l'ensemble des {n} dans un tableau par {a}.|Quels sont les dix {a} les plus "
        "fréquents parmi les {n} ?|Regroupe les {n} par {a} et donne la taille de chaque groupe."
        "|Combien de valeurs distinctes de {a} trouve-t-on dans les {n} ?",
        "pairwise": "Trouve toutes les paires de {n} qui partagent le même {a}.|Liste chaque "
        "paire de {n} ayant le {a} {v}.|Quels {n} vont par deux avec le même {a} ? Donne toutes "
        "les paires.|Donne tous les couples de {n} dont le {a} est identique, un couple par "
        "ligne.|Compare chaque {n} à tous les autres et liste les paires de même {a}.|Quelles "
        "paires de {n} ont été créées à la même {a} ?",
        "multihop": "Trouve le {a} de {x}, puis liste les autres {n} qui ont ce {a}.|Qui "
        "possède {x}, et quels autres {n} cette personne possède-t-elle ?|Prends le {n} au {a} "
        "le plus élevé, puis donne le {a} de son créateur.|À quel {a} appartient {x}, et quel "
        "est le plus grand des {n} de ce {a} ?|Suis {x} dans les enregistrements : que lui "
        "est-il arrivé après le changement de {a} ?|Comment les composants de ce code "
        "s'appellent-ils entre eux ? Dresse le graphe d'appels.|Quels services de ce code "
        "dépendent de quels autres ?|Explique comment les données circulent entre les fichiers "
        "source du projet.|Quelles méthodes de toute la base de code ne sont jamais appelées ?"
        "|À partir du {a} de {x}, trouve les {n} qui le partagent, puis leurs propriétaires.",
    },
    "de": {
        "chat": "Hallo, wie geht's?|Kannst du mir helfen, eine höfliche E-Mail an meinen "
        "Vermieter zu schreiben?|Wie könnte eine Bäckerei heißen?|Erklär mir Rekursion ganz "
        "einfach.|Erzähl mir einen Witz.|Warum wirft dieser Code einen KeyError?|Wie drehe ich "
        "in Python einen String um?|Formuliere diesen Absatz förmlicher.|Übersetze diesen Satz "
        "ins Englische.|Was ist der Unterschied zwischen einer Liste und einem Tupel?|Danke, "
        "das hat geholfen!|Behebe den Fehler in dieser Funktion.|Was kann man an einem "
        "Regentag unternehmen?|Wie viele Milliliter hat ein Liter?|Kannst du das kürzen?|Was "
        "soll ich heute Abend kochen?",
        "lookup": "Was ist der {a} von {x}?|Wann wurde {x} angelegt?|Wem gehört {x}?|Finde "
        "den für {x} eingetragenen {a}.|Was steht im Dokument über {x}?|Zitiere die Zeile, in "
        "der {x} vorkommt.|Wie hoch ist der Gesamtbetrag von {x}?|Was war der letzte {a} von "
        "{x}?|Wo in der Datei ist {x} definiert?|Was bewirkt die Option zu {x}?|Was geschah laut "
        "Text mit {x}, bevor es geschlossen wurde?|Nenne nur den {a} von {x}.|In welcher Datei "
        "steht {x}?",
        "aggregate": "Wie viele {n} haben den {a} {v}?|Zähle alle {n}, deren {a} {v} ist."
        "|Wie hoch ist der gesamte {a} aller {n}?|Was ist der durchschnittliche {a} der {n}?"
        "|Welcher {a} kommt unter den {n} am häufigsten vor?|Gib die Verteilung der {n} nach "
        "{a} an.|Welcher Anteil der {n} ist {v}?|Ordne die {a}-Werte nach der Anzahl der {n}."
        "|Liste alle {n} mit {a} {v} auf.|Summiere den {a} über alle {n}.|Wie viele {n} gibt es "
        "pro {a}?|Wie viel Prozent der {n} haben den {a} {v}?|Fasse alle {n} in einer Tabelle "
        "nach {a} zusammen.|Was sind die zehn häufigsten {a} unter den {n}?|Gruppiere die {n} "
        "nach {a} und nenne die Größe jeder Gruppe.|Wie viele verschiedene {a} haben die {n}?",
        "pairwise": "Finde alle Paare von {n} mit demselben {a}.|Nenne jedes Paar von {n}, "
        "bei dem beide den {a} {v} haben.|Welche zwei {n} haben denselben {a}? Gib alle solchen "
        "Paare an.|Gib alle Paarungen von {n} mit gleichem {a} aus, ein Paar pro Zeile."
        "|Vergleiche jeden der {n} mit jedem anderen und liste die Paare mit gleichem {a}."
        "|Welche Paare von {n} wurden am selben {a} erstellt?",
        "multihop": "Finde den {a} von {x} und liste dann die anderen {n} mit diesem {a}."
        "|Wem gehört {x}, und welche {n} besitzt diese Person noch?|Nimm die {n} mit dem "
        "höchsten {a} und nenne dann den {a} ihres Erstellers.|Zu welchem {a} gehört {x}, und "
        "was ist der größte der {n} in diesem {a}?|Verfolge {x} durch die Datensätze: was "
        "passierte nach der Änderung des {a}?|Wie rufen sich die Komponenten dieses Codes "
        "gegenseitig auf? Zeichne den Aufrufgraphen.|Welche Dienste in diesem Code hängen von "
        "welchen anderen ab?|Erkläre, wie Daten zwischen den Quelldateien des Projekts fließen."
        "|Welche Methoden der gesamten Codebasis werden nie aufgerufen?|Nimm den {a} von {x}, "
        "finde die {n}, die ihn teilen, und dann deren Besitzer.",
    },
    "es": {
        "chat": "Hola, ¿qué tal?|¿Me ayudas a escribir un correo educado a mi casero?|¿Qué "
        "nombre le pongo a una panadería?|Explícame la recursividad de forma sencilla."
        "|Cuéntame un chiste.|¿Por qué este código lanza un KeyError?|¿Cómo invierto una cadena "
        "en Python?|Reescribe este párrafo con un tono más formal.|Traduce esta frase al "
        "inglés.|¿Cuál es la diferencia entre una lista y una tupla?|¡Gracias, me ha servido!"
        "|Corrige el error de esta función.|¿Qué hago un fin de semana lluvioso?|¿Cuántos "
        "mililitros tiene un litro?|¿Puedes acortar este texto?|¿Qué ceno hoy?",
        "lookup": "¿Cuál es el {a} de {x}?|¿Cuándo se creó {x}?|¿Quién es el propietario de "
        "{x}?|Busca el {a} registrado para {x}.|¿Qué dice el documento sobre {x}?|Cita la "
        "línea que menciona {x}.|¿Cuál es el importe total de {x}?|¿Cuál fue el {a} más "
        "reciente de {x}?|¿Dónde está definido {x} en el archivo?|¿Qué hace la opción de {x}?"
        "|Según el texto, ¿qué pasó con {x} antes de cerrarse?|Dime solo el {a} de {x}.|¿En qué "
        "archivo aparece {x}?",
        "aggregate": "¿Cuántos {n} tienen el {a} {v}?|Cuenta todos los {n} cuyo {a} es {v}."
        "|¿Cuál es el {a} total de todos los {n}?|¿Cuál es el {a} medio de los {n}?|¿Qué {a} "
        "aparece con más frecuencia entre los {n}?|Dame la distribución de los {n} por {a}."
        "|¿Qué porcentaje de los {n} es {v}?|Ordena los valores de {a} según el número de {n}."
        "|Enumera todos los {n} con {a} {v}.|Suma el {a} de cada uno de los {n}.|Para cada {a}, "
        "¿cuántos {n} hay?|Resume todos los {n} en una tabla por {a}.|¿Cuáles son los diez {a} "
        "más frecuentes entre los {n}?|Agrupa los {n} por {a} e indica el tamaño de cada grupo."
        "|¿Cuántos valores distintos de {a} tienen los {n}?|Haz un recuento de los {n} por {a}.",
        "pairwise": "Encuentra todas las parejas de {n} que comparten el mismo {a}.|Lista "
        "cada par de {n} con {a} {v} en ambos.|¿Qué dos {n} tienen el mismo {a}? Da todos los "
        "pares.|Devuelve todas las parejas de {n} con {a} idéntico, una por línea.|Compara "
        "cada uno de los {n} con todos los demás y lista los pares con igual {a}.|¿Qué pares "
        "de {n} se crearon en la misma {a}?",
        "multihop": "Encuentra el {a} de {x} y luego lista los demás {n} con ese {a}.|¿Quién "
        "es el dueño de {x} y qué otros {n} tiene esa persona?|Toma el {n} con el {a} más alto "
        "y luego dime el {a} de quien lo creó.|¿A qué {a} pertenece {x} y cuál es el mayor de "
        "los {n} de ese {a}?|Sigue {x} por los registros: ¿qué le ocurrió después del cambio de "
        "{a}?|¿Cómo se llaman entre sí los componentes de este código? Dibuja el grafo de "
        "llamadas.|¿Qué servicios de este código dependen de cuáles otros?|Explica cómo fluyen "
        "los datos entre los ficheros fuente del proyecto.|¿Qué métodos de todo el código nunca "
        "se invocan?|A partir del {a} de {x}, busca los {n} que lo comparten y después sus "
        "dueños.",
    },
    "pt": {
        "chat": "Olá, tudo bem?|Pode me ajudar a escrever um e-mail educado para o meu "
        "senhorio?|Que nome dou a uma padaria?|Explique recursão de forma simples.|Conte uma "
        "piada.|Por que este código lança um KeyError?|Como inverto uma string em Python?"
        "|Reescreva este parágrafo de forma mais formal.|Traduza esta frase para o inglês.|Qual "
        "é a diferença entre lista e tupla?|Obrigado, ajudou muito!|Corrija o erro desta "
        "função.|O que fazer num fim de semana chuvoso?|Quantos mililitros tem um litro?|Pode "
        "encurtar este texto?|O que eu janto hoje?",
        "lookup": "Qual é o {a} de {x}?|Quando {x} foi criado?|Quem é o responsável por {x}?"
        "|Encontre o {a} registrado para {x}.|O que o documento diz sobre {x}?|Cite a linha que "
        "menciona {x}.|Qual é o valor total de {x}?|Qual foi o {a} mais recente de {x}?|Onde "
        "{x} está definido no arquivo?|O que faz a opção de {x}?|Segundo o texto, o que houve "
        "com {x} antes de ser fechado?|Diga só o {a} de {x}.|Em que arquivo aparece {x}?",
        "aggregate": "Quantos {n} têm o {a} {v}?|Conte todos os {n} cujo {a} é {v}.|Qual é o "
        "{a} total de todos os {n}?|Qual é o {a} médio dos {n}?|Qual {a} aparece mais vezes "
        "entre os {n}?|Mostre a distribuição dos {n} por {a}.|Que percentual dos {n} é {v}?"
        "|Ordene os valores de {a} pelo número de {n}.|Liste todos os {n} com {a} {v}.|Some o "
        "{a} de todos os {n}.|Para cada {a}, quantos {n} existem?|Resuma todos os {n} numa "
        "tabela por {a}.|Quais são os dez {a} mais frequentes entre os {n}?|Agrupe os {n} por "
        "{a} e informe o tamanho de cada grupo.|Quantos valores distintos de {a} os {n} têm?"
        "|Faça a contagem dos {n} por {a}.",
        "pairwise": "Encontre todos os pares de {n} que têm o mesmo {a}.|Liste cada par de "
        "{n} em que ambos têm {a} {v}.|Quais dois {n} têm o mesmo {a}? Dê todos os pares."
        "|Retorne todas as duplas de {n} com {a} idêntico, uma por linha.|Compare cada um dos "
        "{n} com todos os outros e liste os pares com {a} igual.|Quais pares de {n} foram "
        "criados na mesma {a}?",
        "multihop": "Encontre o {a} de {x} e depois liste os outros {n} com esse {a}.|Quem é "
        "o dono de {x}, e que outros {n} essa pessoa tem?|Pegue o {n} com o maior {a} e depois "
        "diga o {a} de quem o criou.|A qual {a} pertence {x}, e qual é o maior dos {n} nesse "
        "{a}?|Siga {x} pelos registros: o que aconteceu depois da mudança de {a}?|Como os "
        "componentes deste código chamam uns aos outros? Monte o grafo de chamadas.|Quais "
        "serviços deste código dependem de quais outros?|Explique como os dados fluem entre os "
        "arquivos-fonte do projeto.|Quais métodos de toda a base de código nunca são chamados?"
        "|A partir do {a} de {x}, ache os {n} que o compartilham e, em seguida, seus donos.",
    },
    "it": {
        "chat": "Ciao, come stai?|Mi aiuti a scrivere un'email cortese al padrone di casa?"
        "|Che nome do a una panetteria?|Spiegami la ricorsione in modo semplice.|Raccontami una "
        "barzelletta.|Perché questo codice solleva un KeyError?|Come inverto una stringa in "
        "Python?|Riscrivi questo paragrafo in tono più formale.|Traduci questa frase in "
        "inglese.|Qual è la differenza tra lista e tupla?|Grazie, mi è stato utile!|Correggi "
        "il bug di questa funzione.|Cosa faccio in un weekend di pioggia?|Quanti millilitri ci "
        "sono in un litro?|Puoi accorciare questo testo?|Cosa cucino stasera?",
        "lookup": "Qual è il {a} di {x}?|Quando è stato creato {x}?|Chi è il proprietario di "
        "{x}?|Trova il {a} registrato per {x}.|Cosa dice il documento su {x}?|Cita la riga che "
        "menziona {x}.|Qual è l'importo totale di {x}?|Qual era il {a} più recente di {x}?|Dove "
        "è definito {x} nel file?|Cosa fa l'opzione relativa a {x}?|Secondo il testo, cosa è "
        "successo a {x} prima della chiusura?|Dimmi solo il {a} di {x}.|In quale file compare "
        "{x}?",
        "aggregate": "Quanti {n} hanno {a} {v}?|Conta tutti i {n} il cui {a} è {v}.|Qual è il "
        "{a} totale di tutti i {n}?|Qual è il {a} medio dei {n}?|Quale {a} compare più spesso "
        "tra i {n}?|Dammi la distribuzione dei {n} per {a}.|Che percentuale dei {n} è {v}?"
        "|Ordina i valori di {a} per numero di {n}.|Elenca tutti i {n} con {a} {v}.|Somma il "
        "{a} su tutti i {n}.|Per ogni {a}, quanti {n} ci sono?|Riassumi tutti i {n} in una "
        "tabella per {a}.|Quali sono i dieci {a} più frequenti tra i {n}?|Raggruppa i {n} per "
        "{a} e indica la dimensione di ogni gruppo.|Quanti valori distinti di {a} hanno i {n}?"
        "|Fai il conteggio dei {n} per {a}.",
        "pairwise": "Trova tutte le coppie di {n} che hanno lo stesso {a}.|Elenca ogni coppia "
        "di {n} in cui entrambi hanno {a} {v}.|Quali due {n} hanno lo stesso {a}? Dai tutte le "
        "coppie.|Restituisci tutte le coppie di {n} con {a} identico, una per riga.|Confronta "
        "ciascuno dei {n} con tutti gli altri ed elenca le coppie con {a} uguale.|Quali coppie "
        "di {n} sono state create nella stessa {a}?",
        "multihop": "Trova il {a} di {x} e poi elenca gli altri {n} con quel {a}.|Chi possiede "
        "{x}, e quali altri {n} possiede quella persona?|Prendi il {n} con il {a} più alto e "
        "poi dimmi il {a} di chi l'ha creato.|A quale {a} appartiene {x}, e qual è il più grande "
        "dei {n} in quel {a}?|Segui {x} nei record: cosa è successo dopo il cambio di {a}?|Come "
        "si chiamano a vicenda i componenti di questo codice? Disegna il grafo delle chiamate."
        "|Quali servizi di questo codice dipendono da quali altri?|Spiega come fluiscono i dati "
        "tra i file sorgente del progetto.|Quali metodi dell'intera base di codice non vengono "
        "mai chiamati?|Partendo dal {a} di {x}, trova i {n} che lo condividono e poi i loro "
        "proprietari.",
    },
    "zh": {
        "chat": "你好，最近怎么样？|能帮我给房东写一封礼貌的邮件吗？|面包店取什么名字好？|"
        "用简单的话解释一下递归。|给我讲个笑话。|这段代码为什么会抛出 KeyError？|在 Python 里"
        "怎么反转字符串？|把这段话改写得正式一些。|把这句话翻译成英文。|列表和元组有什么区别？|"
        "谢谢，很有帮助！|修复这个函数里的错误。|下雨的周末可以做什么？|一升是多少毫升？|"
        "你能把这段文字缩短吗？|今晚做什么菜好？",
        "lookup": "{x} 的{a}是什么？|{x} 是什么时候创建的？|{x} 的负责人是谁？|找出 {x} 记录的"
        "{a}。|文档里关于 {x} 说了什么？|引用提到 {x} 的那一行。|{x} 的总金额是多少？|{x} 最近的"
        "{a}是什么？|{x} 在文件的哪里定义？|和 {x} 有关的选项是做什么的？|根据文本，{x} 在关闭之前"
        "发生了什么？|只告诉我 {x} 的{a}。|{x} 出现在哪个文件里？",
        "aggregate": "有多少条{n}的{a}是{v}？|数一数{a}为{v}的全部{n}。|所有{n}的{a}总和是"
        "多少？|{n}的平均{a}是多少？|在{n}中哪个{a}出现得最多？|给出{n}按{a}的分布。|{n}中有百"
        "分之几是{v}？|按{n}的数量对{a}排序。|列出{a}为{v}的所有{n}。|把所有{n}的{a}加起来。|每"
        "个{a}各有多少{n}？|把全部{n}按{a}汇总成一张表。|{n}中最常见的十个{a}是哪些？|按{a}对{n}"
        "分组，并给出每组的数量。|{n}一共有多少种不同的{a}？|统计各{a}的{n}数量。",
        "pairwise": "找出{a}相同的所有{n}对。|列出两者{a}都是{v}的每一对{n}。|哪两个{n}的{a}"
        "相同？给出所有这样的配对。|返回{a}完全一致的所有{n}组合，每行一对。|把每个{n}和其他所有"
        "{n}比较，列出{a}相等的配对。|哪些{n}对是在同一{a}创建的？",
        "multihop": "先找出 {x} 的{a}，再列出具有相同{a}的其他{n}。|{x} 归谁负责？这个人还负责"
        "哪些{n}？|取{a}最高的{n}，然后告诉我创建者的{a}。|{x} 属于哪个{a}？该{a}中最大的{n}是"
        "哪个？|在记录中追踪 {x}：{a}变化之后发生了什么？|这段代码的各个组件如何互相调用？画出调用"
        "图。|这段代码里哪些服务依赖于哪些服务？|解释数据如何在项目的源文件之间流动。|整个代码库"
        "中哪些方法从未被调用？|根据 {x} 的{a}，找出共享它的{n}，再找出它们的负责人。",
    },
    "ja": {
        "chat": "こんにちは、元気ですか？|大家さんに送る丁寧なメールを書くのを手伝ってください。|"
        "パン屋の名前を考えてください。|再帰を簡単に説明してください。|何か冗談を言って。|このコード"
        "はなぜ KeyError になるのですか？|Python で文字列を逆順にするには？|この段落をもっと丁寧な"
        "文体に書き直して。|この文を英語に翻訳してください。|リストとタプルの違いは何ですか？|"
        "ありがとう、助かりました！|この関数のバグを直してください。|雨の週末は何をすればいい？|"
        "1リットルは何ミリリットル？|この文章を短くできますか？|今夜の夕飯は何にしよう？",
        "lookup": "{x} の{a}は何ですか？|{x} はいつ作成されましたか？|{x} の担当者は誰ですか？|"
        "{x} に記録された{a}を探してください。|文書は {x} について何と書いていますか？|{x} に言及"
        "している行を引用してください。|{x} の合計金額はいくらですか？|{x} の最新の{a}は何ですか？|"
        "{x} はファイルのどこで定義されていますか？|{x} に関するオプションは何をしますか？|本文に"
        "よると、{x} は閉じられる前に何がありましたか？|{x} の{a}だけを教えて。|{x} はどのファイル"
        "にありますか？",
        "aggregate": "{a}が{v}の{n}はいくつありますか？|{a}が{v}である{n}をすべて数えてください。"
        "|すべての{n}の{a}の合計はいくらですか？|{n}の{a}の平均は？|{n}の中で最も多い{a}はどれ"
        "ですか？|{a}別の{n}の分布を示してください。|{n}のうち{v}の割合は？|{n}の数で{a}を順位付け"
        "してください。|{a}が{v}の{n}をすべて列挙してください。|全{n}の{a}を合計してください。|{a}"
        "ごとに{n}はいくつありますか？|すべての{n}を{a}別の表にまとめてください。|{n}で最も頻出する"
        "{a}の上位10件は？|{n}を{a}でグループ化し、各グループの件数を示して。|{n}には異なる{a}が"
        "いくつありますか？|{a}ごとに{n}を集計してください。",
        "pairwise": "{a}が同じ{n}のペアをすべて見つけてください。|両方とも{a}が{v}である{n}の"
        "組をすべて挙げて。|{a}が同じ二つの{n}はどれ？そのような組をすべて答えて。|{a}が一致する"
        "{n}の組み合わせを1行に1組ずつ返してください。|各{n}を他のすべての{n}と比較し、{a}が等しい"
        "ペアを列挙して。|同じ{a}に作成された{n}の組はどれですか？",
        "multihop": "{x} の{a}を調べ、次に同じ{a}を持つ他の{n}を挙げてください。|{x} の担当者"
        "は誰で、その人は他にどの{n}を担当していますか？|{a}が最も高い{n}を選び、その作成者の{a}を"
        "教えて。|{x} はどの{a}に属し、その{a}で最大の{n}はどれですか？|レコードで {x} を追跡して、"
        "{a}が変わった後に何が起きたか教えて。|このコードのコンポーネントは互いにどう呼び出し合って"
        "いますか？呼び出しグラフを描いて。|このコードのどのサービスがどのサービスに依存していますか？"
        "|プロジェクトのソースファイル間でデータがどう流れるか説明して。|コードベース全体で一度も呼ば"
        "れないメソッドはどれ？|{x} の{a}をもとに、それを共有する{n}を探し、"
        "さらにその担当者を挙げて。",
    },
}

# More wordings, appended to TEMPLATES: quantifiers ("every", "the full list", "entire"),
# lookups about versions/options/dates, and chat that uses counting words.
MORE: dict[str, dict[str, str]] = {
    "en": {
        "lookup": "Which version of {x} is installed?|Which option of {x} enables the {a}?"
        "|What is the date of the last {a} change for {x}?|Who is responsible for {x}?|Tell "
        "me the {a} of {x} as written in the list.|What does {x} stand for here?|Which {a} "
        "does {x} have in this file?|Show me the entry for {x}.|What is the exact price given "
        "for {x}?|Which chapter explains {x}?",
        "aggregate": "Give me every {n} in {a} {v}, the complete list.|Which {n} belong to {a} "
        "{v}? I need all of them.|Enumerate the entire set of {n} with {a} {v}.|Across the "
        "whole input, how often does each {a} occur?|What is the breakdown of {n} by {a}?"
        "|Which {a} is the most common, and by how much?|Produce a full inventory of the {n} "
        "grouped by {a}.|How are the {n} spread over the {a} values?|Name each {a} together "
        "with how many {n} it has.|Which {a} accounts for the largest share of {n}?|Show the "
        "count per {a} for the whole file.|Summarise everything in the document.",
        "chat": "How many days are in a leap year?|What is the total of 17 and 25?|Compare "
        "tea and coffee for me.|What happened before the French Revolution?|Both options "
        "sound good, which do you prefer?|Then what should I do next?|What's the difference "
        "between {n} and {a}?|Tell me about {n}.|What is a {a}, in simple words?|Write a "
        "short poem about {n}.|Can you explain what {x} means?",
        "pairwise": "Which {n} match each other on {a}? List the matching pairs.|Pair up the "
        "{n} that have the same {a} and a different {a}.|Find duplicate {n}: every two with "
        "identical {a}.",
        "multihop": "Which {n} refer to each other, directly or through a third one?|Find "
        "{x}, then the {n} it points to, then the {a} of those.|Describe how the parts of this "
        "whole repository fit together.|Which parts of the code base import which others?",
    },
    "fr": {
        "lookup": "Quelle version de {x} est installée ?|Quelle option de {x} active le {a} "
        "?|Quelle est la date du dernier changement de {a} pour {x} ?|Qui s'occupe de {x} ?"
        "|Montre-moi l'entrée de {x}.|Quel prix exact est indiqué pour {x} ?|Quel chapitre "
        "explique {x} ?",
        "aggregate": "Donne-moi chaque {n} de {a} {v}, la liste complète.|Quels {n} "
        "appartiennent au {a} {v} ? Il me les faut tous.|Sur l'ensemble du texte, combien de "
        "fois apparaît chaque {a} ?|Quelle est la ventilation des {n} par {a} ?|Quel {a} est "
        "le plus fréquent, et de combien ?|Dresse l'inventaire complet des {n} par {a}."
        "|Nomme chaque {a} avec le nombre de {n} correspondant.|Résume tout le document.",
        "chat": "Combien de jours compte une année bissextile ?|Compare le thé et le café."
        "|Que s'est-il passé avant la Révolution ?|Et ensuite, je fais quoi ?|Parle-moi des {n}."
        "|Qu'est-ce qu'un {a}, en termes simples ?",
        "pairwise": "Quels {n} se correspondent par leur {a} ? Liste les paires.|Trouve les "
        "doublons parmi les {n} : chaque fois deux avec le même {a}.",
        "multihop": "Décris comment les parties de ce dépôt s'articulent.|Trouve {x}, puis "
        "les {n} vers lesquels il pointe, puis leur {a}.",
    },
    "de": {
        "lookup": "Welche Version von {x} ist installiert?|Welche Option von {x} aktiviert "
        "den {a}?|Wann wurde der {a} von {x} zuletzt geändert?|Wer ist für {x} zuständig?"
        "|Zeig mir den Eintrag zu {x}.|Welcher genaue Preis steht bei {x}?|Welches Kapitel "
        "erklärt {x}?",
        "aggregate": "Gib mir alle {n} mit {a} {v}, die vollständige Liste.|Welche {n} "
        "gehören zu {a} {v}? Ich brauche alle.|Wie oft kommt im gesamten Text jeder {a} vor?"
        "|Wie verteilen sich die {n} auf die {a}-Werte?|Welcher {a} ist am häufigsten, und mit "
        "welchem Abstand?|Erstelle eine vollständige Übersicht der {n} nach {a}.|Nenne jeden "
        "{a} mit der Zahl seiner {n}.|Fasse das gesamte Dokument zusammen.",
        "chat": "Wie viele Tage hat ein Schaltjahr?|Vergleiche Tee und Kaffee.|Was geschah "
        "vor der Französischen Revolution?|Und was mache ich danach?|Erzähl mir etwas über "
        "{n}.|Was ist ein {a}, einfach erklärt?",
        "pairwise": "Welche {n} stimmen im {a} überein? Liste die Paare.|Finde Dubletten "
        "unter den {n}: je zwei mit gleichem {a}.",
        "multihop": "Beschreibe, wie die Teile dieses Repositorys zusammenhängen.|Finde {x}, "
        "dann die {n}, auf die es verweist, dann deren {a}.",
    },
    "es": {
        "lookup": "¿Qué versión de {x} está instalada?|¿Qué opción de {x} activa el {a}?"
        "|¿Cuándo cambió por última vez el {a} de {x}?|¿Quién se encarga de {x}?|Muéstrame la "
        "entrada de {x}.|¿Qué precio exacto figura para {x}?|¿Qué capítulo explica {x}?",
        "aggregate": "Dame todos los {n} de {a} {v}, la lista completa.|¿Qué {n} pertenecen "
        "al {a} {v}? Los necesito todos.|En todo el texto, ¿cuántas veces aparece cada {a}?"
        "|¿Cuál es el desglose de los {n} por {a}?|¿Qué {a} es el más común y por cuánto?|Haz "
        "un inventario completo de los {n} por {a}.|Nombra cada {a} con su número de {n}."
        "|Resume todo el documento.",
        "chat": "¿Cuántos días tiene un año bisiesto?|Compara el té y el café.|¿Qué pasó "
        "antes de la Revolución Francesa?|¿Y después qué hago?|Háblame de los {n}.|¿Qué es un "
        "{a}, en palabras sencillas?",
        "pairwise": "¿Qué {n} coinciden en su {a}? Lista los pares.|Encuentra duplicados "
        "entre los {n}: cada dos con el mismo {a}.",
        "multihop": "Describe cómo encajan las partes de este repositorio.|Busca {x}, luego "
        "los {n} a los que apunta y luego su {a}.",
    },
    "pt": {
        "lookup": "Qual versão de {x} está instalada?|Qual opção de {x} ativa o {a}?|Quando "
        "o {a} de {x} mudou pela última vez?|Quem cuida de {x}?|Mostre a entrada de {x}.|Qual "
        "preço exato aparece para {x}?|Qual capítulo explica {x}?",
        "aggregate": "Me dê todos os {n} de {a} {v}, a lista completa.|Quais {n} pertencem ao "
        "{a} {v}? Preciso de todos.|No texto inteiro, quantas vezes aparece cada {a}?|Qual é a "
        "divisão dos {n} por {a}?|Qual {a} é o mais comum e por quanto?|Faça um inventário "
        "completo dos {n} por {a}.|Diga cada {a} com o número de {n}.|Resuma o documento "
        "inteiro.",
        "chat": "Quantos dias tem um ano bissexto?|Compare chá e café.|O que aconteceu antes "
        "da Revolução Francesa?|E depois, o que eu faço?|Fale sobre {n}.|O que é um {a}, em "
        "palavras simples?",
        "pairwise": "Quais {n} coincidem no {a}? Liste os pares.|Ache duplicados entre os "
        "{n}: cada dois com o mesmo {a}.",
        "multihop": "Descreva como as partes deste repositório se encaixam.|Ache {x}, depois "
        "os {n} para os quais aponta e depois o {a} deles.",
    },
    "it": {
        "lookup": "Quale versione di {x} è installata?|Quale opzione di {x} attiva il {a}?"
        "|Quando è cambiato l'ultima volta il {a} di {x}?|Chi si occupa di {x}?|Mostrami la "
        "voce di {x}.|Quale prezzo esatto è indicato per {x}?|Quale capitolo spiega {x}?",
        "aggregate": "Dammi tutti i {n} di {a} {v}, l'elenco completo.|Quali {n} "
        "appartengono al {a} {v}? Mi servono tutti.|In tutto il testo, quante volte compare "
        "ogni {a}?|Qual è la ripartizione dei {n} per {a}?|Quale {a} è il più comune e di "
        "quanto?|Fai un inventario completo dei {n} per {a}.|Indica ogni {a} con il numero di "
        "{n}.|Riassumi l'intero documento.",
        "chat": "Quanti giorni ha un anno bisestile?|Confronta tè e caffè.|Cosa è successo "
        "prima della Rivoluzione francese?|E dopo cosa faccio?|Parlami dei {n}.|Che cos'è un "
        "{a}, in parole semplici?",
        "pairwise": "Quali {n} coincidono per {a}? Elenca le coppie.|Trova i duplicati tra i "
        "{n}: ogni due con lo stesso {a}.",
        "multihop": "Descrivi come si incastrano le parti di questo repository.|Trova {x}, "
        "poi i {n} a cui rimanda, poi il loro {a}.",
    },
    "zh": {
        "lookup": "安装的是哪个版本的 {x}？|{x} 的哪个选项会开启{a}？|{x} 的{a}最后一次变更是"
        "什么时候？|谁负责 {x}？|给我看 {x} 的条目。|{x} 标注的确切价格是多少？|哪一章解释了 {x}？",
        "aggregate": "把{a}为{v}的{n}全部给我，要完整列表。|哪些{n}属于{a}{v}？我需要全部。|"
        "在整个文本中，每个{a}各出现多少次？|{n}按{a}的构成是怎样的？|哪个{a}最常见，多出多少？|"
        "按{a}做一份完整的{n}清单。|说出每个{a}以及对应的{n}数量。|总结整份文档。",
        "chat": "闰年有多少天？|比较一下茶和咖啡。|法国大革命之前发生了什么？|然后我该做什么？|"
        "跟我说说{n}。|用简单的话说，什么是{a}？",
        "pairwise": "哪些{n}的{a}相互匹配？列出配对。|找出{n}中的重复项：每两个{a}相同的。",
        "multihop": "描述这个仓库的各个部分如何组合在一起。|找到 {x}，再找它指向的{n}，再给出"
        "它们的{a}。",
    },
    "ja": {
        "lookup": "インストールされている {x} のバージョンは？|{x} のどのオプションで{a}が有効に"
        "なりますか？|{x} の{a}が最後に変わったのはいつ？|{x} の担当は誰？|{x} の項目を見せて。|"
        "{x} に書かれている正確な価格は？|{x} を説明しているのはどの章？",
        "aggregate": "{a}が{v}の{n}を全部、完全なリストでください。|{a}{v}に属する{n}はどれ？"
        "全部必要です。|テキスト全体で各{a}は何回出てきますか？|{n}の{a}別の内訳は？|最も多い{a}"
        "はどれで、どれくらい多い？|{a}別に{n}の完全な一覧を作って。|各{a}とその{n}の数を挙げて。|"
        "文書全体を要約してください。",
        "chat": "うるう年は何日ありますか？|お茶とコーヒーを比べて。|"
        "フランス革命の前に何があった？|"
        "それから何をすればいい？|{n}について教えて。|{a}とは何か、簡単に説明して。",
        "pairwise": "{a}が一致する{n}はどれ？ペアを挙げて。|{n}の重複を探して：{a}が同じものを"
        "二つずつ。",
        "multihop": "このリポジトリの各部分がどう組み合わさっているか説明して。|{x} を見つけ、"
        "それが指す{n}、さらにその{a}を答えて。",
    },
}
for _lang, _kinds in MORE.items():
    for _kind, _joined in _kinds.items():
        TEMPLATES[_lang][_kind] += "|" + _joined

# Aggregations scoped to one item ("... of customer X") are aggregations too: without these
# the model took any named item for a lookup.
SCOPED = {
    "en": "How many {n} of {x} have {a} {v}?|For {x}, which {a} is the most frequent among "
    "its {n}?|Count the {n} that belong to {x}.|What is the total {a} of all {n} from {x}?"
    "|Which {a} occurs most among the {n} linked to {x}?",
    "fr": "Combien de {n} de {x} ont le {a} {v} ?|Pour {x}, quel {a} est le plus fréquent "
    "parmi ses {n} ?|Compte les {n} qui appartiennent à {x}.|Quel est le {a} total des {n} "
    "de {x} ?",
    "de": "Wie viele {n} von {x} haben den {a} {v}?|Welcher {a} kommt bei den {n} von {x} am "
    "häufigsten vor?|Zähle die {n}, die zu {x} gehören.|Wie hoch ist der gesamte {a} der {n} "
    "von {x}?",
    "es": "¿Cuántos {n} de {x} tienen el {a} {v}?|Para {x}, ¿qué {a} es el más frecuente entre "
    "sus {n}?|Cuenta los {n} que pertenecen a {x}.|¿Cuál es el {a} total de los {n} de {x}?",
    "pt": "Quantos {n} de {x} têm o {a} {v}?|Para {x}, qual {a} é o mais frequente entre seus "
    "{n}?|Conte os {n} que pertencem a {x}.|Qual é o {a} total dos {n} de {x}?",
    "it": "Quanti {n} di {x} hanno {a} {v}?|Per {x}, quale {a} è il più frequente tra i suoi "
    "{n}?|Conta i {n} che appartengono a {x}.|Qual è il {a} totale dei {n} di {x}?",
    "zh": "{x} 的{n}中有多少{a}是{v}？|对于 {x}，它的{n}里哪个{a}最常见？|数一数属于 {x} 的"
    "{n}。|{x} 的所有{n}的{a}总计是多少？",
    "ja": "{x} の{n}のうち{a}が{v}のものはいくつ？|{x} の{n}で最も多い{a}は何ですか？|{x} に"
    "属する{n}を数えてください。|{x} のすべての{n}の{a}の合計は？",
}
for _lang, _joined in SCOPED.items():
    TEMPLATES[_lang]["aggregate"] += "|" + _joined

# Wordings whose surface words belong to another kind, in every language: a value asked with
# "how much" ("{x} 的{a}是多少？" is a lookup), an option that makes a tool list something, the
# date of the last entry; a list question followed by "give me the full list", counts over a
# threshold ("at least"), averages asked with "how much", and "… ? Then …" chains.
CROSSED = {
    "en": {
        "lookup": "What is the {a} of {x} in this table?|How much is the {a} listed for {x}?"
        "|Which flag makes {x} print its {a}?|Which setting lets {x} list its {n}?|What is the "
        "date of the most recent entry for {x}?|When was {x} last updated, according to the log?",
        "aggregate": "Which {n} have {a} {v}? Give me the complete list.|What {n} fall under "
        "{a} {v}? List every one of them.|How many {n} have a {a} of at least {v}?|What is the "
        "average {a} over these {n}?|How much is the mean {a} of all {n}?",
        "multihop": "Which {n} has {a} {v}? Then list the other {n} with the same owner.|Find "
        "who handled {x}, then list everything else that person handled.",
    },
    "fr": {
        "lookup": "Quel est le {a} de {x} dans ce tableau ?|Combien vaut le {a} indiqué pour "
        "{x} ?|Quelle option fait afficher à {x} son {a} ?|Quelle est la date de la dernière "
        "modification de {x} ?|Quand {x} a-t-il été mis à jour pour la dernière fois ?",
        "aggregate": "Quels {n} ont le {a} {v} ? Donne-moi la liste complète.|Combien de {n} "
        "ont un {a} d'au moins {v} ?|Quel est le {a} moyen de ces {n} ?|Cite tous les {n} dont "
        "le {a} est {v}, sans en oublier.",
        "multihop": "Quel {n} a le {a} {v} ? Ensuite, liste les autres {n} du même "
        "responsable.|Trouve qui a traité {x}, puis liste tout ce que cette personne a traité.",
    },
    "de": {
        "lookup": "Was ist der {a} von {x} in dieser Tabelle?|Wie hoch ist der für {x} "
        "angegebene {a}?|Welche Option lässt {x} seinen {a} ausgeben?|Wann war der letzte "
        "Eintrag zu {x}?|Welches Datum hat die neueste Änderung an {x}?",
        "aggregate": "Welche {n} haben den {a} {v}? Gib mir die vollständige Liste.|Wie viele "
        "{n} haben einen {a} von mindestens {v}?|Wie viele {n} weisen mindestens {v} als {a} "
        "auf?|Was ist der durchschnittliche {a} dieser {n}?|Nenne alle {n} mit {a} {v}, "
        "lückenlos.",
        "multihop": "Welche {n} hat den {a} {v}? Liste danach die anderen {n} desselben "
        "Verantwortlichen auf.|Finde heraus, wer {x} bearbeitet hat, und liste dann alles "
        "auf, was diese Person bearbeitet hat.",
    },
    "es": {
        "lookup": "¿Cuál es el {a} de {x} en esta tabla?|¿Cuánto es el {a} indicado para "
        "{x}?|¿Qué opción hace que {x} muestre su {a}?|¿Cuál es la fecha de la última entrada "
        "de {x}?|¿Cuándo se actualizó {x} por última vez?",
        "aggregate": "¿Qué {n} tienen el {a} {v}? Dame la lista completa.|¿Cuántos {n} tienen "
        "un {a} de al menos {v}?|¿Cuál es el {a} medio de estos {n}?|Nombra todos los {n} con "
        "{a} {v}, sin dejar ninguno.",
        "multihop": "¿Qué {n} tiene el {a} {v}? Después, enumera los otros {n} del mismo "
        "responsable.|Averigua quién atendió {x} y luego enumera todo lo que atendió esa "
        "persona.",
    },
    "pt": {
        "lookup": "Qual é o {a} de {x} nesta tabela?|Quanto é o {a} indicado para {x}?|Qual "
        "opção faz {x} mostrar o seu {a}?|Qual é a data da última entrada de {x}?|Quando {x} "
        "foi atualizado pela última vez?",
        "aggregate": "Quais {n} têm o {a} {v}? Dê-me a lista completa.|Quantos {n} têm um {a} "
        "de pelo menos {v}?|Qual é o {a} médio destes {n}?|Cite todos os {n} com {a} {v}, sem "
        "deixar nenhum.",
        "multihop": "Qual {n} tem o {a} {v}? Depois, liste os outros {n} do mesmo "
        "responsável.|Descubra quem tratou {x} e depois liste tudo o que essa pessoa tratou.",
    },
    "it": {
        "lookup": "Qual è il {a} di {x} in questa tabella?|Quanto vale il {a} indicato per "
        "{x}?|Quale opzione fa mostrare a {x} il suo {a}?|Qual è la data dell'ultima voce di "
        "{x}?|Quando è stato aggiornato {x} l'ultima volta?",
        "aggregate": "Quali {n} hanno {a} {v}? Dammi l'elenco completo.|Quanti {n} hanno un "
        "{a} di almeno {v}?|Qual è il {a} medio di questi {n}?|Nomina tutti i {n} con {a} {v}, "
        "senza tralasciarne nessuno.",
        "multihop": "Quale {n} ha {a} {v}? Poi elenca gli altri {n} dello stesso "
        "responsabile.|Scopri chi ha gestito {x}, poi elenca tutto ciò che quella persona ha "
        "gestito.",
    },
    "zh": {
        "lookup": "表里 {x} 的{a}是多少？|{x} 标注的{a}是多少？|{x} 的{a}等于多少？|哪个参数能让 "
        "{x} 列出它的{n}？|{x} 最后一条记录的日期是哪天？|根据日志，{x} 最后一次更新是什么时候？",
        "aggregate": "哪些{n}的{a}是{v}？请给出完整列表。|有多少{n}的{a}至少为{v}？|这些{n}的"
        "{a}平均是多少？|所有{n}的平均{a}是多少？|{a}不低于{v}的{n}有几个？",
        "multihop": "哪个{n}的{a}是{v}？然后列出同一负责人的其他{n}。|先找到处理 {x} 的人，"
        "然后列出此人处理过的所有{n}。|哪位负责人处理了 {x}？接着列出他处理的其他{n}。",
    },
    "ja": {
        "lookup": "表にある {x} の{a}はいくらですか？|{x} の{a}はいくつですか？|{x} に{n}を一覧"
        "表示させるオプションはどれですか？|{x} の最新の記録の日付はいつですか？|ログによると、"
        "{x} が最後に更新されたのはいつですか？",
        "aggregate": "{a}が{v}の{n}はどれですか？全部挙げてください。|{a}が{v}以上の{n}は"
        "いくつありますか？|これらの{n}の{a}の平均はいくらですか？|すべての{n}の平均{a}は"
        "いくつですか？",
        "multihop": "{a}が{v}の{n}はどれですか？次に、同じ担当者の他の{n}を挙げてください。|"
        "{x} を担当したのは誰か調べ、その人が担当した他の{n}をすべて挙げてください。",
    },
}
for _lang, _kinds in CROSSED.items():
    for _kind, _joined in _kinds.items():
        TEMPLATES[_lang][_kind] += "|" + _joined
