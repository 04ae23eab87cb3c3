<%@ page contentType="application/json; charset=UTF-8" trimDirectiveWhitespaces="true" session="false" %>
<% String handler = "public"; %>
<%@ include file="answer.jspf" %>
